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

// The deployment log viewer lives in logview.js (issue 17).

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
