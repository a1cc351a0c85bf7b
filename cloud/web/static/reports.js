/* Reports: the period picker builds the download link; the transaction export downloads with a progress bar
 * (rows read against the count the hub announces in X-Marquee-Rows-Estimate). Both work as plain links without
 * this. */
"use strict";

(function () {
  const M = window.Marquee;
  const periodForm = document.getElementById("period-form");
  const link = document.getElementById("period-link");

  function periodLink() {
    const f = M.filters(periodForm);
    const period = f[f.kind];
    const url = new URL(periodForm.dataset.base + "/" + encodeURIComponent(period), window.location.origin);
    url.searchParams.set("format", f.format);
    if (f.site) url.searchParams.set("site", f.site);
    link.href = url.pathname + url.search;
    periodForm.querySelectorAll("input[name=month], input[name=quarter], input[name=year]").forEach(function (input) {
      input.closest("label").hidden = input.name !== f.kind;
    });
  }
  periodForm.addEventListener("input", periodLink);
  periodForm.addEventListener("change", periodLink);
  periodForm.addEventListener("submit", function (event) { event.preventDefault(); link.click(); });
  periodLink();

  const exportForm = document.getElementById("export-form");
  const progress = document.getElementById("export-progress");
  const bar = document.getElementById("export-bar");
  const count = document.getElementById("export-count");

  async function exportWithProgress(event) {
    if (typeof ReadableStream === "undefined") return; // the plain form download
    event.preventDefault();
    const url = new URL(exportForm.dataset.api, window.location.origin);
    Object.entries(M.filters(exportForm)).forEach(function ([name, value]) {
      if (value) url.searchParams.set(name, value);
    });
    progress.hidden = false;
    bar.removeAttribute("value");
    count.textContent = "starting…";
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) {
        let detail = response.statusText;
        try { detail = (await response.json()).detail || detail; } catch (ignored) { /* not JSON */ }
        throw new Error(response.status + " " + detail);
      }
      const announced = Number(response.headers.get("X-Marquee-Rows-Estimate"));
      const exact = response.headers.get("X-Marquee-Rows-Estimate-Kind") === "exact";
      const reader = response.body.getReader();
      const chunks = [];
      let lines = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        for (let i = 0; i < value.length; i += 1) if (value[i] === 10) lines += 1;
        const rows = Math.max(0, lines - (url.searchParams.get("format") === "jsonl" ? 0 : 1));
        if (announced > 0) {
          bar.max = announced;
          bar.value = Math.min(rows, announced);
          count.textContent = rows + (exact ? " of " : " of at most ") + announced + " rows";
        } else {
          count.textContent = rows + " rows";
        }
      }
      const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
      const save = document.createElement("a");
      save.href = URL.createObjectURL(new Blob(chunks, { type: response.headers.get("Content-Type") || "" }));
      save.download = name ? name[1] : "transactions";
      document.body.appendChild(save);
      save.click();
      save.remove();
      window.setTimeout(function () { URL.revokeObjectURL(save.href); }, 60000);
      count.textContent += " · done";
    } catch (error) {
      count.textContent = "export failed: " + error.message;
    }
  }
  exportForm.addEventListener("submit", exportWithProgress);
})();
