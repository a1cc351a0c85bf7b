/* The overview: today's sales per site, pushed by the hub (Server-Sent Events on /api/v1/live) and redrawn as
 * they come, without reloading. EventSource reconnects by itself when a stream ends or the network drops. */
"use strict";

(function () {
  const M = window.Marquee;
  const live = document.getElementById("live");
  const state = document.getElementById("live-state");

  function setState(text, css) {
    state.textContent = text;
    state.className = "state " + css;
  }

  function siteName(row) {
    return row.name || row.site_id;
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

  function drawTotals(sites) {
    const byCurrency = new Map();
    // A site that sold nothing yet today comes as zeros without a currency: nothing to add.
    sites.filter(function (row) { return row.currency; }).forEach(function (row) {
      const t = byCurrency.get(row.currency) || { tickets: 0, ticket: 0, concession: 0, sales: 0 };
      t.tickets += row.tickets;
      t.ticket += row.ticket_revenue;
      t.concession += row.concession_revenue;
      t.sales += row.sales;
      byCurrency.set(row.currency, t);
    });
    const cards = [];
    byCurrency.forEach(function (t, currency) {
      cards.push(card("Tickets", String(t.tickets)), card("Ticket revenue", M.money(t.ticket, currency)),
        card("Concessions", M.money(t.concession, currency)), card("Sales", String(t.sales)));
    });
    if (!cards.length) cards.push(card("Tickets", "0"), card("Sales", "0"));
    document.getElementById("totals").replaceChildren.apply(document.getElementById("totals"), cards);
  }

  function drawTable(sites) {
    M.fill("today", sites, function (row) {
      return [siteName(row), row.day, [row.tickets, "num"], [M.money(row.ticket_revenue, row.currency), "num"],
        [M.money(row.concession_revenue, row.currency), "num"], [row.sales, "num"]];
    }, "No sale yet today.");
    const body = document.getElementById("today").tBodies[0];
    sites.forEach(function (row, i) { body.rows[i].dataset.site = row.site_id; });
  }

  function drawChart(sites) {
    const currency = M.mainCurrency(sites, "ticket_revenue");
    const shown = sites.filter(function (row) { return row.currency === currency || !row.currency; });
    const labels = shown.map(siteName);
    const data = [
      { label: "Tickets" + (currency ? " (" + currency + ")" : ""), data: shown.map(function (r) { return r.ticket_revenue / 100; }) },
      { label: "Concessions" + (currency ? " (" + currency + ")" : ""), data: shown.map(function (r) { return r.concession_revenue / 100; }) },
    ];
    const chart = window.Chart && window.Chart.getChart(document.getElementById("chart-today"));
    if (chart) { // update in place: no flicker on every sale
      chart.data.labels = labels;
      chart.data.datasets.forEach(function (dataset, i) {
        dataset.label = data[i].label;
        dataset.data = data[i].data;
      });
      chart.update();
      return;
    }
    M.bars("chart-today", labels, data, { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } });
  }

  function drawChanges(changes) {
    const list = document.getElementById("changes");
    const items = changes.map(function (change) {
      const li = document.createElement("li");
      li.dataset.site = change.site_id;
      const at = document.createElement("time");
      at.dateTime = change.at;
      at.textContent = new Date(change.at).toLocaleTimeString();
      const what = document.createElement("span");
      const sign = change.tickets >= 0 ? "+" : "";
      what.textContent = " " + (change.name || change.site_id) + ": " + sign + change.tickets + " ticket(s), "
        + M.money(change.ticket_revenue + change.concession_revenue, change.currency) + " in "
        + change.sales + " sale(s)";
      li.append(at, what);
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No sale since this page opened.";
      items.push(li);
    }
    list.replaceChildren.apply(list, items);
  }

  function show(message) {
    drawTotals(message.sites);
    drawTable(message.sites);
    drawChart(message.sites);
    drawChanges(message.changes);
    live.dataset.updated = message.at;
    setState("live · " + new Date(message.at).toLocaleTimeString(), "on");
  }

  drawChart([]);
  if (typeof window.EventSource !== "function") {
    setState("this browser cannot receive live updates: reload to refresh", "off");
    return;
  }
  const source = new EventSource(live.dataset.stream, { withCredentials: true });
  let lost = null;
  function back() {
    window.clearTimeout(lost);
    lost = null;
  }
  source.addEventListener("sales", function (event) { back(); show(JSON.parse(event.data)); });
  source.addEventListener("open", function () {
    back();
    if (!live.dataset.updated) setState("live", "on");
  });
  source.addEventListener("error", function () {
    // The hub ends each stream after a while and EventSource reconnects at once (the hub's `retry`): say so only
    // when it takes longer than that. Closed means the hub refused (signed out, say): only a reload helps.
    if (source.readyState === EventSource.CLOSED) {
      setState("disconnected: reload the page", "off");
    } else if (lost === null) {
      lost = window.setTimeout(function () { setState("reconnecting…", "off"); }, 3000);
    }
  });
})();
