// cronium dashboard: live updates without a build step. Served from /static (the CSP allows no
// inline script). Text from jobs is only ever set with textContent, never parsed as HTML.
"use strict";

// Forms with data-confirm ask before they post (cancel, retry).
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

// The executions list: poll its rows (server-rendered, escaped HTML) every few seconds.
(function () {
  var table = document.getElementById("executions");
  if (!table || table.getAttribute("data-live") !== "yes") return;
  var url = table.getAttribute("data-rows");
  var body = table.querySelector("tbody");
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) { if (html !== null) body.innerHTML = html; })
      .catch(function () {})
      .then(function () { window.setTimeout(refresh, 3000); });
  }
  window.setTimeout(refresh, 3000);
})();

// One execution: follow its log over server-sent events while it runs.
(function () {
  var log = document.getElementById("log");
  if (!log) return;
  var url = log.getAttribute("data-events");
  if (!url) return;
  var source = new EventSource(url);
  source.onmessage = function (event) {
    var line = JSON.parse(event.data);
    var span = document.createElement("span");
    span.className = line.stream === "stderr" ? "stderr" : "stdout";
    span.textContent = line.text;
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(span);
    if (atBottom) log.scrollTop = log.scrollHeight;
  };
  source.addEventListener("status", function (event) {
    var badge = document.getElementById("status");
    var status = JSON.parse(event.data);
    if (badge && typeof status === "string") {
      badge.textContent = status;
      badge.className = "badge " + status.replace(/[^a-z_]/g, "");
    }
  });
  source.addEventListener("end", function () {
    source.close();
    var live = document.getElementById("live");
    if (live) live.textContent = "ended";
    window.setTimeout(function () { window.location.reload(); }, 500);
  });
})();
