// boxkeeper operator page: refresh the parts marked data-refresh="URL" data-every="SECONDS"
// without reloading the page. A 401 (the session ended) reloads, which leads to the sign-in form.
// A part stops refreshing when the new content has no data-refresh of its own (a finished run).
(function () {
  "use strict";
  function schedule(el) {
    var every = Math.max(2, parseInt(el.getAttribute("data-every") || "10", 10)) * 1000;
    setTimeout(function () { refresh(el); }, every);
  }
  function refresh(el) {
    var url = el.getAttribute("data-refresh");
    if (!url) { return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          el.innerHTML = html;
          var state = el.querySelector("[data-finished]");
          if (state && state.getAttribute("data-finished") === "yes") {
            el.removeAttribute("data-refresh");
            return;
          }
        }
        schedule(el);
      })
      .catch(function () { schedule(el); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var parts = document.querySelectorAll("[data-refresh]");
    for (var i = 0; i < parts.length; i++) { schedule(parts[i]); }
  });
})();
