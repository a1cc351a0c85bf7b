/* The alert cases (fraud rules, the hub's checks, low feedback scores), newest first, from /api/v1/alerts; a case
 * can be acknowledged, resolved or reopened from here (POST with the session's CSRF token). */
"use strict";

(function () {
  const M = window.Marquee;
  const form = document.getElementById("alert-filters");

  const MOVES = { open: ["acknowledged", "resolved"], acknowledged: ["resolved", "open"], resolved: ["open"] };
  const VERBS = { acknowledged: "Acknowledge", resolved: "Resolve", open: "Reopen" };

  function move(id, to) {
    M.send("/api/v1/alerts/" + id + "/transition", { to: to }).then(load).catch(M.failed("the move of case " + id));
  }

  function load() {
    const state = M.filters(form).state;
    M.api("/api/v1/alerts", { state: state, limit: 200 }).then(function (cases) {
      M.fill("alerts", cases, function (c) {
        return [M.time(c.raised_at), [c.severity, "severity " + c.severity], c.site_id, c.reason || c.code,
          c.summary, c.card, [c.count, "num"], c.state, ""];
      }, state ? "No " + state + " case." : "No case.");
      const rows = document.getElementById("alerts").tBodies[0].rows;
      cases.forEach(function (c, i) {
        const cell = rows[i].cells[8];
        (MOVES[c.state] || []).forEach(function (to) {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "small";
          button.textContent = VERBS[to];
          button.addEventListener("click", function () { move(c.id, to); });
          cell.appendChild(button);
        });
      });
    }).catch(M.failed("the alert cases"));
  }

  form.addEventListener("change", load);
  form.addEventListener("submit", function (event) { event.preventDefault(); load(); });
  load();
  window.setInterval(load, 30000);
})();
