/* Box office and occupancy: charts by day, site, film, day part, hall and weekday for the range and site of the
 * filter form, from /api/v1/analytics/box-office and /api/v1/analytics/occupancy. */
"use strict";

(function () {
  const M = window.Marquee;
  const filters = M.filters(document.getElementById("filters"));
  const DAY_PARTS = ["morning", "afternoon", "evening", "late"];
  const WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

  function boxOffice(group) {
    return M.api("/api/v1/analytics/box-office", Object.assign({ group: group }, filters));
  }

  function occupancy(group) {
    return M.api("/api/v1/analytics/occupancy", Object.assign({ group: group }, filters));
  }

  /* Keys in a fixed order where there is one (day parts, weekdays), else by `field`, largest first. */
  function ordered(totals, order, limit) {
    let keys = Array.from(totals.keys());
    if (order) {
      const rank = function (key) { const i = order.indexOf(String(key).toLowerCase()); return i < 0 ? 99 : i; };
      keys.sort(function (a, b) { return rank(a) - rank(b) || String(a).localeCompare(String(b)); });
    } else {
      keys.sort(function (a, b) { return totals.get(b) - totals.get(a); });
    }
    return limit ? keys.slice(0, limit) : keys;
  }

  function ticketsChart(id, rows, order, limit, horizontal) {
    const totals = M.sumByKey(rows, "tickets");
    const keys = ordered(totals, order, limit);
    M.bars(id, keys.map(M.label), [{ label: "Tickets", data: keys.map(function (k) { return totals.get(k); }) }],
      { horizontal: horizontal, scales: { [horizontal ? "x" : "y"]: { beginAtZero: true } } });
  }

  function occupancyChart(id, rows, order) {
    const known = rows.filter(function (row) { return row.occupancy !== null && row.occupancy !== undefined; });
    const totals = new Map(known.map(function (row) { return [row.key, row.occupancy * 100]; }));
    const keys = ordered(totals, order, 15);
    M.bars(id, keys.map(M.label), [{ label: "Occupancy %", data: keys.map(function (k) { return totals.get(k); }) }],
      { scales: { y: { beginAtZero: true, suggestedMax: 100 } } });
  }

  boxOffice("day").then(function (rows) {
    const totals = M.sumByKey(rows, "tickets");
    const days = Array.from(totals.keys()).sort();
    M.chart("chart-day", {
      type: "line",
      data: { labels: days, datasets: [{ label: "Tickets", data: days.map(function (d) { return totals.get(d); }),
        borderColor: M.COLORS[0], backgroundColor: M.COLORS[0], tension: 0.2 }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
    });
  }).catch(M.failed("tickets per day"));

  Promise.all([boxOffice("site"), occupancy("site")]).then(function ([rows, occ]) {
    const currency = M.mainCurrency(rows, "ticket_revenue");
    const shown = rows.filter(function (row) { return row.currency === currency; })
      .sort(function (a, b) { return (b.ticket_revenue + b.concession_revenue) - (a.ticket_revenue + a.concession_revenue); });
    M.bars("chart-site", shown.map(function (r) { return M.label(r.key); }), [
      { label: "Tickets (" + currency + ")", data: shown.map(function (r) { return r.ticket_revenue / 100; }) },
      { label: "Concessions (" + currency + ")", data: shown.map(function (r) { return r.concession_revenue / 100; }) },
    ], { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } });
    const occupancyOf = new Map(occ.map(function (row) { return [row.key, row.occupancy]; }));
    M.fill("sites", rows, function (r) {
      return [M.label(r.key), [r.tickets, "num"], [M.money(r.ticket_revenue, r.currency), "num"],
        [M.money(r.concession_revenue, r.currency), "num"], [r.sales, "num"], [r.member_sales, "num"],
        [M.decimal(r.attach_rate), "num"], [M.percent(occupancyOf.get(r.key)), "num"]];
    });
    occupancyChart("chart-occ-site", occ);
  }).catch(M.failed("the figures by site"));

  Promise.all([boxOffice("film"), occupancy("film")]).then(function ([rows, occ]) {
    ticketsChart("chart-film", rows, null, 15, true);
    occupancyChart("chart-occ-film", occ);
    const shows = new Map(occ.map(function (row) { return [row.key, row]; }));
    rows.sort(function (a, b) { return b.tickets - a.tickets; });
    M.fill("films", rows, function (r) {
      const o = shows.get(r.key) || {};
      return [M.label(r.key), [r.tickets, "num"], [M.money(r.ticket_revenue, r.currency), "num"],
        [M.money(r.concession_revenue, r.currency), "num"], [M.decimal(r.attach_rate), "num"],
        [M.money(Math.round(r.spend_per_head === null ? 0 : r.spend_per_head), r.currency), "num"],
        [o.shows === undefined ? "–" : o.shows, "num"], [M.percent(o.occupancy), "num"]];
    });
  }).catch(M.failed("the figures by film"));

  boxOffice("daypart").then(function (rows) { ticketsChart("chart-daypart", rows, DAY_PARTS); })
    .catch(M.failed("the figures by day part"));
  boxOffice("hall").then(function (rows) { ticketsChart("chart-hall", rows, null, 20); })
    .catch(M.failed("the figures by hall"));
  boxOffice("weekday").then(function (rows) { ticketsChart("chart-weekday", rows, WEEKDAYS); })
    .catch(M.failed("the figures by weekday"));
  occupancy("hall").then(function (rows) { occupancyChart("chart-occ-hall", rows); })
    .catch(M.failed("occupancy by hall"));
  occupancy("daypart").then(function (rows) { occupancyChart("chart-occ-daypart", rows, DAY_PARTS); })
    .catch(M.failed("occupancy by day part"));
})();
