// Small progressive enhancements; every page works without them except live updates.
(function () {
  "use strict";
  var dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  // Show <time data-local> in the browser's timezone; the server renders UTC as a fallback.
  function localiseTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) {
        el.textContent = dateFormat.format(when);
        el.title = when.toISOString();
        el.removeAttribute("data-local");
        el.setAttribute("data-localised", "");
      }
    });
  }
  window.shipyardLocaliseTimes = localiseTimes;
  document.addEventListener("DOMContentLoaded", function () { localiseTimes(document); });
  document.addEventListener("htmx:afterSettle", function (event) { localiseTimes(event.target); });
})();

// The live deployment log: Server-Sent Events, auto-scroll with pause, filters by host and level.
(function () {
  "use strict";
  var FINAL = ["success", "failed", "partial", "cancelled", "interrupted"];

  function setup() {
    var log = document.getElementById("log");
    if (!log || !log.dataset.stream) { return; }
    var state = document.getElementById("log-state");
    var follow = document.getElementById("log-follow");
    var hostFilter = document.getElementById("log-host");
    var levelFilter = document.getElementById("log-level");
    var hosts = JSON.parse(log.dataset.hosts || "{}");
    var following = true;
    var timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

    function setFollowing(on) {
      following = on;
      follow.setAttribute("aria-pressed", on ? "true" : "false");
      follow.textContent = on ? "Pause auto-scroll" : "Resume auto-scroll";
      if (on) { log.scrollTop = log.scrollHeight; }
    }
    follow.addEventListener("click", function () { setFollowing(!following); });
    // Scrolling up to read pauses; scrolling back to the bottom resumes.
    log.addEventListener("scroll", function () {
      var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
      if (following !== atBottom) { setFollowing(atBottom); }
    });

    function visible(line) {
      var host = hostFilter.value, level = levelFilter.value;
      return (!host || line.dataset.host === host) && (!level || line.dataset.level === level);
    }
    function applyFilters() {
      log.querySelectorAll(".line").forEach(function (line) { line.hidden = !visible(line); });
      if (following) { log.scrollTop = log.scrollHeight; }
    }
    hostFilter.addEventListener("change", applyFilters);
    levelFilter.addEventListener("change", applyFilters);

    function append(entry) {
      var line = document.createElement("span");
      line.className = "line lvl-" + entry.level;
      line.dataset.host = entry.host_id || "";
      line.dataset.level = entry.level;
      line.dataset.seq = entry.seq;
      var when = new Date(entry.timestamp);
      var host = entry.host_id ? (hosts[entry.host_id] || entry.host_id) + ": " : "";
      line.textContent = timeFormat.format(when) + " " + entry.level.padEnd(7) + " " + host + entry.message + "\n";
      line.hidden = !visible(line);
      log.appendChild(line);
    }

    var source = new EventSource(log.dataset.stream);
    source.addEventListener("open", function () { state.textContent = "Live."; });
    source.addEventListener("log", function (event) {
      append(JSON.parse(event.data));
      if (following) { log.scrollTop = log.scrollHeight; }
    });
    source.addEventListener("end", function (event) {
      var status = JSON.parse(event.data).status;
      source.close();
      state.textContent = "Finished: " + status + ".";
      log.dataset.ended = status;
      document.body.dispatchEvent(new CustomEvent("deployment-ended", { detail: { status: status } }));
    });
    source.addEventListener("error", function () {
      if (log.dataset.ended) { return; }
      // EventSource reconnects by itself, resuming after the last id it saw.
      state.textContent = "Connection lost; reconnecting…";
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }
  document.addEventListener("DOMContentLoaded", setup);
})();

// Plain forms that need a second thought carry data-confirm (HTMX ones use hx-confirm).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// Wizard helpers: pick hosts by status, and send the browser's UTC offset with a local time.
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("[data-select-status]") : null;
  if (!button) { return; }
  var status = button.getAttribute("data-select-status");
  document.querySelectorAll("#host-choices input[type=checkbox]").forEach(function (box) {
    box.checked = status !== "" && box.dataset.status === status;
  });
});
document.addEventListener("submit", function (event) {
  var offset = event.target.querySelector ? event.target.querySelector("[data-tz-offset]") : null;
  var when = event.target.querySelector ? event.target.querySelector("input[name=scheduled_local]") : null;
  if (offset) {
    var local = when && when.value ? new Date(when.value) : new Date();
    offset.value = String(local.getTimezoneOffset());
  }
});
