/* The sites page is rendered by the hub; this refreshes it in place every 10 seconds without reloading. */
"use strict";

(function () {
  const M = window.Marquee;

  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status + " " + response.statusText);
        return response.text();
      })
      .then(function (html) {
        // Parsed inert (no script runs) from the hub's own escaped page: only the sites part is taken.
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("sites-body");
        if (fresh) document.getElementById("sites-body").replaceWith(document.importNode(fresh, true));
        M.notice("");
      })
      .catch(M.failed("the sites"));
  }

  window.setInterval(refresh, 10000);
})();
