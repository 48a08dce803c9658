// The results grid (issue 17): clicking a cell asks the log viewer to show only that host and
// script's lines, through the `shipyard:log-filter` event on document (the viewer's side of the
// contract is window.shipyardLog.filter with the same detail). Clicking it again shows every line.
(function () {
  "use strict";
  // The current filter survives the grid's refreshes (it replaces itself every 2 s while live).
  var current = { host: null, script: null, failedOnly: false };

  function send(detail) {
    current = detail;
    document.dispatchEvent(new CustomEvent("shipyard:log-filter", { detail: detail }));
    mark();
  }

  // Show which cell or host the log is filtered to.
  function mark() {
    var grid = document.getElementById("results-grid");
    if (!grid) { return; }
    grid.querySelectorAll(".grid-cell, .grid-host").forEach(function (button) {
      var selected = button.classList.contains("grid-cell")
        ? current.script !== null && button.dataset.scriptRow === current.script
        : current.script === null && current.host !== null && button.dataset.hostId === current.host;
      button.setAttribute("aria-pressed", selected ? "true" : "false");
    });
    grid.dataset.filterHost = current.host || "";
    grid.dataset.filterScript = current.script || "";
    // The download follows the filter: the lines on show, as a .gz file.
    var download = document.getElementById("grid-download");
    if (download) {
      var base = download.getAttribute("href").split("?")[0];
      var query = new URLSearchParams();
      if (current.host) { query.set("host", current.host); }
      if (current.script) { query.set("script", current.script); }
      if (current.failedOnly) { query.set("failed", "true"); }
      var narrowed = query.toString();
      download.setAttribute("href", narrowed ? base + "?" + narrowed : base);
      download.textContent = narrowed ? "Download these lines (.gz)" : "Download log (.gz)";
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    var cell = target.closest("#results-grid .grid-cell");
    var host = target.closest("#results-grid .grid-host");
    var clear = target.closest("#grid-clear");
    var failedOnly = current.failedOnly;
    if (cell) {
      var script = cell.dataset.scriptRow || null;
      if (current.script === script) {
        send({ host: null, script: null, failedOnly: failedOnly });
      } else {
        send({ host: cell.dataset.hostId || null, script: script, failedOnly: failedOnly });
      }
    } else if (host) {
      var hostId = host.dataset.hostId || null;
      if (current.script === null && current.host === hostId) {
        send({ host: null, script: null, failedOnly: failedOnly });
      } else {
        send({ host: hostId, script: null, failedOnly: failedOnly });
      }
    } else if (clear) {
      send({ host: null, script: null, failedOnly: failedOnly });
    }
  });

  // "Failed only" narrows the grid (HTMX fetches it again) and the log alike.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box instanceof HTMLInputElement && box.id === "grid-failed-only") {
      send({ host: current.host, script: current.script, failedOnly: box.checked });
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target instanceof Element && event.target.id === "results-grid") { mark(); }
  });
})();
