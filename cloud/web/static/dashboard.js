/* What every dashboard page shares: API calls, money and number formats, tables and charts.
 * Text from the data goes into the page with textContent only, never as markup. */
"use strict";

(function () {
  const M = {};

  M.money = function (minor, currency) {
    if (minor === null || minor === undefined) return "–";
    const sign = minor < 0 ? "-" : "";
    const abs = Math.abs(minor);
    const amount = sign + Math.floor(abs / 100) + "." + String(abs % 100).padStart(2, "0");
    return currency ? amount + " " + currency : amount;
  };

  M.percent = function (ratio) {
    return ratio === null || ratio === undefined ? "–" : (ratio * 100).toFixed(1) + " %";
  };

  M.decimal = function (value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits === undefined ? 2 : digits);
  };

  M.label = function (key) {
    return key === null || key === undefined || key === "" ? "(none)" : String(key);
  };

  M.time = function (iso) {
    return iso ? new Date(iso).toLocaleString() : "–";
  };

  /* Fetch JSON from the API with the session (or the browser's HTTP Basic login); an Error saying why otherwise. */
  M.api = async function (path, params) {
    const url = new URL(path, window.location.origin);
    Object.entries(params || {}).forEach(function ([name, value]) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
    });
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        if (typeof body.detail === "string") detail = body.detail;
      } catch (ignored) { /* not JSON: the status says enough */ }
      const error = new Error(response.status + " " + detail);
      error.status = response.status;
      throw error;
    }
    return response.json();
  };

  /* POST JSON to the API as the signed-in user: a session's requests carry its CSRF token (base.html's meta). */
  M.send = async function (path, body) {
    const token = document.querySelector("meta[name=csrf-token]");
    const headers = { Accept: "application/json", "Content-Type": "application/json" };
    if (token) headers["X-CSRF-Token"] = token.content;
    const response = await fetch(path, { method: "POST", credentials: "same-origin", headers: headers,
      body: JSON.stringify(body) });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const answer = await response.json();
        if (typeof answer.detail === "string") detail = answer.detail;
      } catch (ignored) { /* not JSON */ }
      throw new Error(response.status + " " + detail);
    }
    return response.json();
  };

  /* Say something above the page's content (errors loading a part of the page). */
  M.notice = function (text) {
    const notice = document.getElementById("notice");
    if (!notice) return;
    notice.textContent = text;
    notice.hidden = !text;
  };

  M.failed = function (what) {
    return function (error) {
      M.notice("Could not load " + what + ": " + error.message);
    };
  };

  /* Replace a table's body: one row per item, `cells(item)` gives each cell as text or [text, "num"]. */
  M.fill = function (table, items, cells, empty) {
    const body = (typeof table === "string" ? document.getElementById(table) : table).tBodies[0];
    const columns = body.parentElement.tHead.rows[0].cells.length;
    const rows = items.map(function (item) {
      const tr = document.createElement("tr");
      cells(item).forEach(function (cell) {
        const td = document.createElement("td");
        const [text, css] = Array.isArray(cell) ? cell : [cell, null];
        td.textContent = text === null || text === undefined ? "–" : String(text);
        if (css) td.className = css;
        tr.appendChild(td);
      });
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = columns;
      td.textContent = empty || "Nothing in this range.";
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren.apply(body, rows);
  };

  /* The values of a filter form, by input name. */
  M.filters = function (form) {
    const values = {};
    new FormData(form).forEach(function (value, name) { values[name] = value; });
    return values;
  };

  M.COLORS = ["#3366cc", "#dc7633", "#2e9e6b", "#9b59b6", "#c0392b", "#1abc9c", "#d4ac0d", "#5d6d7e",
    "#e67e22", "#16a085"];

  M.chartsAvailable = function () {
    return typeof window.Chart === "function";
  };

  function unavailable(canvas) {
    const holder = canvas.closest(".canvas") || canvas.parentElement;
    if (holder.querySelector(".unavailable")) return;
    const note = document.createElement("p");
    note.className = "unavailable";
    note.textContent = "charts unavailable";
    canvas.hidden = true;
    holder.appendChild(note);
  }

  /* Draw (or redraw) a chart on the canvas with id `id`; without the chart library, say so in its place. */
  M.chart = function (id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return null;
    if (!M.chartsAvailable()) {
      unavailable(canvas);
      return null;
    }
    const existing = window.Chart.getChart(canvas);
    if (existing) existing.destroy();
    return new window.Chart(canvas, config);
  };

  /* A bar chart of one or more series over `labels`. */
  M.bars = function (id, labels, series, options) {
    const opts = options || {};
    return M.chart(id, {
      type: "bar",
      data: {
        labels: labels,
        datasets: series.map(function (one, i) {
          return { label: one.label, data: one.data, backgroundColor: M.COLORS[i % M.COLORS.length] };
        }),
      },
      options: {
        indexAxis: opts.horizontal ? "y" : "x",
        plugins: { legend: { display: series.length > 1 } },
        scales: opts.scales || {},
      },
    });
  };

  /* Rows of the API keyed by `key` and split by currency, summed over currencies for counts. */
  M.sumByKey = function (rows, field) {
    const totals = new Map();
    rows.forEach(function (row) { totals.set(row.key, (totals.get(row.key) || 0) + (row[field] || 0)); });
    return totals;
  };

  /* The currency most of the money is in, so a money chart shows one unit. */
  M.mainCurrency = function (rows, field) {
    const totals = new Map();
    rows.forEach(function (row) { totals.set(row.currency, (totals.get(row.currency) || 0) + (row[field] || 0)); });
    let best = null;
    totals.forEach(function (value, currency) { if (best === null || value > totals.get(best)) best = currency; });
    return best;
  };

  if (M.chartsAvailable()) {
    window.Chart.defaults.animation = false; // drawn at once: calmer on a tablet, and each update shows now
    window.Chart.defaults.maintainAspectRatio = false;
    window.Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  } else {
    document.addEventListener("DOMContentLoaded", function () {
      document.querySelectorAll("canvas").forEach(unavailable);
    });
  }

  window.Marquee = M;
})();
