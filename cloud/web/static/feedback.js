/* Audience feedback: NPS by site, film and hall (/api/v1/feedback/nps) and the open complaints
 * waiting for an answer (/api/v1/complaints). */
"use strict";

(function () {
  const M = window.Marquee;
  const filters = M.filters(document.getElementById("filters"));

  function nps(group) {
    return M.api("/api/v1/feedback/nps", Object.assign({ group: group }, filters));
  }

  function npsChart(id, rows) {
    const shown = rows.slice().sort(function (a, b) { return b.answers - a.answers; }).slice(0, 15);
    M.bars(id, shown.map(function (r) { return M.label(r.key); }),
      [{ label: "NPS", data: shown.map(function (r) { return r.nps; }) }],
      { scales: { y: { min: -100, max: 100 } } });
  }

  nps("site").then(function (rows) { npsChart("chart-nps-site", rows); }).catch(M.failed("NPS by site"));
  nps("hall").then(function (rows) { npsChart("chart-nps-hall", rows); }).catch(M.failed("NPS by hall"));
  nps("film").then(function (rows) {
    npsChart("chart-nps-film", rows);
    rows.sort(function (a, b) { return b.answers - a.answers; });
    M.fill("nps-film", rows, function (r) {
      return [M.label(r.key), [r.answers, "num"], [r.promoters, "num"], [r.passives, "num"], [r.detractors, "num"],
        [r.nps === null || r.nps === undefined ? "–" : Math.round(r.nps), "num"],
        [M.decimal(r.averages && r.averages.film, 1), "num"], [M.decimal(r.averages && r.averages.hall, 1), "num"],
        [M.decimal(r.averages && r.averages.staff, 1), "num"]];
    }, "No answer in this range.");
  }).catch(M.failed("NPS by film"));

  const waiting = ["open", "in_progress", "answered"].map(function (state) {
    return M.api("/api/v1/complaints", { state: state, site: filters.site, limit: 200 });
  });
  Promise.all(waiting).then(function (lists) {
    const complaints = [].concat.apply([], lists).sort(function (a, b) { return b.id - a.id; });
    M.fill("complaints", complaints, function (c) {
      return [[c.id, "num"], M.time(c.created_at), c.site_id, c.category, c.owner, c.state,
        [M.time(c.due_at) + (c.overdue ? " (overdue)" : ""), c.overdue ? "attention" : null]];
    }, "No complaint is waiting.");
  }).catch(M.failed("the complaints"));
})();
