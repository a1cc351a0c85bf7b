/* Members: summary, RFM segments, favourite genres and day parts, the churn warning list, members close to a tier
 * change and the top members, from /api/v1/analytics/members/... Members appear by their pseudonymous id only. */
"use strict";

(function () {
  const M = window.Marquee;
  const topForm = document.getElementById("top-filters");
  let currency = "";

  function money(minor) {
    return M.money(Math.round(minor), currency);
  }

  function card(label, value) {
    const div = document.createElement("div");
    div.className = "card";
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = label;
    const figure = document.createElement("span");
    figure.className = "value";
    figure.textContent = value;
    div.append(name, figure);
    return div;
  }

  function shares(id, rows) {
    M.bars(id, rows.map(function (r) { return M.label(r.name); }),
      [{ label: "Members", data: rows.map(function (r) { return r.members; }) }],
      { scales: { y: { beginAtZero: true } } });
  }

  const summary = M.api("/api/v1/analytics/members/summary").then(function (s) {
    currency = s.currency;
    document.getElementById("as-of").textContent = s.as_of ? M.time(s.as_of) : "not computed yet";
    const cards = document.getElementById("summary");
    cards.replaceChildren(card("Members", s.members), card("Active (30 days)", s.active_30d),
      card("Active (90 days)", s.active_90d), card("New this month", s.new_this_month),
      card("Visits per active member (30 days)", M.decimal(s.visits_per_active_member_30d, 1)),
      card("Spend per member", money(s.spend_per_member)));
  }).catch(M.failed("the members' summary"));

  summary.then(function () { return M.api("/api/v1/analytics/members/segments"); }).then(function (answer) {
    const segments = answer.segments.filter(function (s) { return s.members > 0; });
    M.bars("chart-segments", segments.map(function (s) { return M.label(s.segment); }),
      [{ label: "Members", data: segments.map(function (s) { return s.members; }) }],
      { horizontal: true, scales: { x: { beginAtZero: true } } });
    M.fill("segments", segments, function (s) {
      return [M.label(s.segment), [s.members, "num"], [M.percent(s.share), "num"],
        [M.decimal(s.avg_visits, 1), "num"], [money(s.avg_spend), "num"]];
    }, "No member yet.");
  }).catch(M.failed("the segments"));

  M.api("/api/v1/analytics/members/preferences").then(function (p) {
    shares("chart-genres", p.genres);
    shares("chart-dayparts", p.day_parts);
  }).catch(M.failed("the preferences"));

  summary.then(function () { return M.api("/api/v1/analytics/members/churn", { limit: 50 }); }).then(function (page) {
    document.getElementById("churn-rule").textContent = "Listed: " + page.rule + "; highest spend first.";
    M.fill("churn", page.items, function (m) {
      return [m.member_id, m.last_visit, [m.days_since, "num"], [M.decimal(m.interval_days, 1), "num"],
        [m.visits, "num"], [money(m.spend), "num"]];
    }, "No member is drifting away.");
  }).catch(M.failed("the churn list"));

  summary.then(function () { return M.api("/api/v1/analytics/members/tier-close", { limit: 20 }); })
    .then(function (page) {
      M.fill("tiers", page.items, function (t) {
        return [t.member_id, t.tier, t.change === "up" ? "upgrade" : "downgrade", t.target,
          [M.percent(t.gap), "num"], [t.visits_short, "num"],
          [t.spend_short === null ? null : money(t.spend_short), "num"], t.review_month];
      }, "No member is close to a tier change.");
    }).catch(M.failed("the tier changes"));

  function loadTop() {
    const by = M.filters(topForm).by;
    summary.then(function () { return M.api("/api/v1/analytics/members/top", { by: by, limit: 20 }); })
      .then(function (page) {
        let rank = 0;
        M.fill("top", page.items, function (m) {
          rank += 1;
          return [[rank, "num"], m.member_id, m.tier, [m.points_earned, "num"], [m.balance, "num"],
            [m.visits, "num"], [money(m.spend), "num"], m.last_visit];
        }, "No member yet.");
      }).catch(M.failed("the top members"));
  }
  topForm.addEventListener("change", loadTop);
  topForm.addEventListener("submit", function (event) { event.preventDefault(); loadTop(); });
  loadTop();
})();
