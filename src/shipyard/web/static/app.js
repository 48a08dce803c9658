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
