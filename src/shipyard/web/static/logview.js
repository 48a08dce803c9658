// The deployment log viewer (issue 17): a virtual list over the log read API.
//
// Only the rows on screen (plus a margin) are in the DOM. Lines are fetched by offset in pages
// kept in a bounded cache, so the page holds a fixed amount whatever the log's size. Live runs
// extend the view through the existing Server-Sent Events stream. Log text only ever reaches
// the DOM through textContent (never innerHTML): ANSI colours become classes or CSSOM styles.
(function () {
  "use strict";
  var PAGE = 500;          // lines per request
  var MAX_PAGES = 40;      // the cache's budget: 20,000 lines whatever the log's size
  var ROW = 20;            // px per row: the CSS gives .log .line this height
  var MARGIN = 40;         // rows rendered above and below the viewport
  var MAX_PX = 8000000;    // tallest scroll area used (browsers cap element heights near 16-33M px)

  // ---- ANSI: SGR to styled segments; other escapes stripped; CR keeps the last state ----
  var ESCAPES = /\x1b\[([0-?]*)[ -\/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[ -\/]*[0-~]?|\r|[\x00-\x08\x0b-\x1f\x7f]/g;
  var CUBE = [0, 95, 135, 175, 215, 255];

  function colour256(n) {
    if (n < 16) { return n; }
    if (n < 232) {
      n -= 16;
      return "rgb(" + CUBE[Math.floor(n / 36)] + "," + CUBE[Math.floor(n / 6) % 6] + "," + CUBE[n % 6] + ")";
    }
    var grey = 8 + 10 * (n - 232);
    return "rgb(" + grey + "," + grey + "," + grey + ")";
  }
  function byte(value) { var n = parseInt(value, 10); return isNaN(n) ? 0 : Math.max(0, Math.min(255, n)); }

  function applySgr(style, params) {
    var codes = params === "" ? ["0"] : params.split(/[;:]/);
    for (var i = 0; i < codes.length; i++) {
      var code = codes[i] === "" ? 0 : parseInt(codes[i], 10);
      if (code === 0) { style = {}; }
      else if (code === 1) { style.bold = true; }
      else if (code === 2) { style.dim = true; }
      else if (code === 3) { style.italic = true; }
      else if (code === 4) { style.underline = true; }
      else if (code === 22) { style.bold = false; style.dim = false; }
      else if (code === 23) { style.italic = false; }
      else if (code === 24) { style.underline = false; }
      else if (code >= 30 && code <= 37) { style.fg = code - 30; }
      else if (code >= 90 && code <= 97) { style.fg = code - 90 + 8; }
      else if (code >= 40 && code <= 47) { style.bg = code - 40; }
      else if (code >= 100 && code <= 107) { style.bg = code - 100 + 8; }
      else if (code === 39) { style.fg = null; }
      else if (code === 49) { style.bg = null; }
      else if (code === 38 || code === 48) {
        var key = code === 38 ? "fg" : "bg";
        if (codes[i + 1] === "5") { style[key] = colour256(byte(codes[i + 2])); i += 2; }
        else if (codes[i + 1] === "2") {
          style[key] = "rgb(" + byte(codes[i + 2]) + "," + byte(codes[i + 3]) + "," + byte(codes[i + 4]) + ")";
          i += 4;
        }
      }
    }
    return style;
  }

  function copyStyle(style) {
    var copy = {};
    for (var key in style) { if (style[key] !== null && style[key] !== false && style[key] !== undefined) { copy[key] = style[key]; } }
    return copy;
  }

  // [{text, style}]: what a terminal would show of the line.
  function parseAnsi(message) {
    var out = [], style = {}, clear = false, last = 0, match;
    function push(text) {
      if (!text) { return; }
      if (clear) { out = []; clear = false; }
      out.push({ text: text, style: copyStyle(style) });
    }
    ESCAPES.lastIndex = 0;
    while ((match = ESCAPES.exec(message)) !== null) {
      push(message.slice(last, match.index));
      last = ESCAPES.lastIndex;
      if (match[0] === "\r") { clear = true; }
      else if (match[2] === "m") { style = applySgr(copyStyle(style), match[1]); }
      if (match[0] === "") { ESCAPES.lastIndex++; }
    }
    push(message.slice(last));
    return out;
  }

  function styledSpan(segment) {
    var style = segment.style, span = document.createElement("span"), classes = [];
    if (typeof style.fg === "number") { classes.push("ansi-fg-" + style.fg); }
    else if (style.fg) { span.style.color = style.fg; }
    if (typeof style.bg === "number") { classes.push("ansi-bg-" + style.bg); }
    else if (style.bg) { span.style.backgroundColor = style.bg; }
    if (style.bold) { classes.push("ansi-bold"); }
    if (style.dim) { classes.push("ansi-dim"); }
    if (style.italic) { classes.push("ansi-italic"); }
    if (style.underline) { classes.push("ansi-underline"); }
    if (classes.length) { span.className = classes.join(" "); }
    return span;
  }

  // Text with the search's hits wrapped in <mark>, as nodes (textContent only).
  function appendText(parent, text, pattern) {
    if (!pattern) { parent.appendChild(document.createTextNode(text)); return; }
    var last = 0, match;
    pattern.lastIndex = 0;
    while ((match = pattern.exec(text)) !== null) {
      if (match[0] === "") { pattern.lastIndex++; continue; }
      if (match.index > last) { parent.appendChild(document.createTextNode(text.slice(last, match.index))); }
      var mark = document.createElement("mark");
      mark.textContent = match[0];
      parent.appendChild(mark);
      last = match.index + match[0].length;
    }
    if (last < text.length) { parent.appendChild(document.createTextNode(text.slice(last))); }
  }

  function renderMessage(parent, message, pattern) {
    parseAnsi(message).forEach(function (segment) {
      var target = parent;
      if (Object.keys(segment.style).length) { target = styledSpan(segment); parent.appendChild(target); }
      appendText(target, segment.text, pattern);
    });
  }

  function escapeRegExp(text) { return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

  function errorMessage(body, fallback) {
    try {
      var error = body && body.error;
      var first = error && error.details && error.details.errors && error.details.errors[0];
      return (first && first.message) || (error && error.message) || fallback;
    } catch (e) { return fallback; }
  }

  function setup() {
    var log = document.getElementById("log");
    if (!log || !log.dataset.api) { return; }
    var card = document.getElementById("log-card");
    var spacer = log.querySelector(".log-spacer");
    var rowsEl = log.querySelector(".log-rows");
    var state = document.getElementById("log-state");
    var follow = document.getElementById("log-follow");
    var timesButton = document.getElementById("log-times");
    var fullButton = document.getElementById("log-fullscreen");
    var hostSelect = document.getElementById("log-host");
    var levelSelect = document.getElementById("log-level");
    var streamSelect = document.getElementById("log-stream");
    var filterNote = document.getElementById("log-filter-note");
    var searchForm = document.getElementById("log-search");
    var searchInput = document.getElementById("log-q");
    var regexBox = document.getElementById("log-regex");
    var hitsEl = document.getElementById("log-hits");
    var api = log.dataset.api;
    var hosts = JSON.parse(log.dataset.hosts || "{}");
    var timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });

    var view = { host: null, script: null, level: null, stream: null, failedOnly: false };
    // ``base``: the number of the view's first line (the API's first_line: 1, unless retention
    // pruned a run's first lines, whose others keep their numbers). Index i shows line base + i.
    var total = 0, base = 1, generation = 0, following = true, expectedTop = -1, target = null;
    var pages = new Map(), loading = new Map(), tick = 0;
    var source = null, ended = log.dataset.final === "true", endedStatus = log.dataset.status || "";
    var search = { matches: [], set: new Set(), index: -1, count: 0, truncated: false, pattern: null };
    var frame = 0;

    function query(extra) {
      var params = new URLSearchParams(extra || {});
      if (view.host) { params.set("host_id", view.host); }
      if (view.script) { params.set("script_id", view.script); }
      if (view.level) { params.set("level", view.level); }
      if (view.stream) { params.set("stream", view.stream); }
      if (view.failedOnly) { params.set("failed_only", "true"); }
      return params.toString();
    }
    function getJson(url) {
      return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { throw new Error(errorMessage(body, "The log could not be read (" + response.status + ").")); }
          return body;
        });
      });
    }

    // ---- geometry: line index <-> scroll position (scaled above MAX_PX) ----
    function visibleRows() { return Math.max(1, Math.ceil(log.clientHeight / ROW)); }
    function scaled() { return total * ROW > MAX_PX; }
    function firstIndex() {
      if (!scaled()) { return Math.floor(log.scrollTop / ROW); }
      var maxScroll = Math.max(1, MAX_PX - log.clientHeight);
      return Math.round(Math.min(1, log.scrollTop / maxScroll) * Math.max(0, total - visibleRows()));
    }
    function topFor(index) {
      if (!scaled()) { return index * ROW; }
      var maxScroll = MAX_PX - log.clientHeight;
      return (index / Math.max(1, total - visibleRows())) * maxScroll;
    }
    function scrollTo(top) {
      log.scrollTop = Math.max(0, top);
      expectedTop = log.scrollTop;
    }
    function toBottom() { scrollTo(log.scrollHeight); }

    // ---- the page cache: sparse pages of PAGE lines, at most MAX_PAGES of them ----
    function lineAt(index) {
      var page = pages.get(Math.floor(index / PAGE));
      if (!page) { return null; }
      page.used = ++tick;
      return page.lines[index % PAGE] || null;
    }
    // Put lines (numbered base..base+total-1) where they belong; ``complete`` marks the pages a
    // whole-page answer filled, as of the view's size then.
    function store(lines, complete) {
      lines.forEach(function (entry) {
        var index = entry.line - base, pageIndex = Math.floor(index / PAGE), page = pages.get(pageIndex);
        if (!page) { page = { lines: [], used: ++tick, fetchedAt: -1 }; pages.set(pageIndex, page); }
        page.lines[index % PAGE] = entry;
      });
      if (complete !== undefined) {
        var page = pages.get(complete.page);
        if (!page) { page = { lines: [], used: ++tick, fetchedAt: -1 }; pages.set(complete.page, page); }
        page.fetchedAt = complete.total;
      }
    }
    function evict(keepFrom, keepTo) {
      if (pages.size <= MAX_PAGES) { return; }
      var entries = Array.from(pages.entries()).filter(function (entry) {
        return entry[0] < keepFrom || entry[0] > keepTo;
      });
      entries.sort(function (a, b) { return a[1].used - b[1].used; });
      while (pages.size > MAX_PAGES && entries.length) { pages.delete(entries.shift()[0]); }
    }
    function load(pageIndex) {
      if (loading.has(pageIndex)) { return; }
      var mine = generation;
      loading.set(pageIndex, true);
      var asked = total;
      getJson(api + "/logs?" + query({ offset: pageIndex * PAGE, limit: PAGE })).then(function (data) {
        if (mine !== generation) { return; }
        loading.delete(pageIndex);
        // Merged, so lines a live stream added past what this answer holds stay.
        store(data.lines.filter(function (entry) { return entry.line - base < total; }), { page: pageIndex, total: asked });
        evict(pageIndex, pageIndex);
        schedule();
      }).catch(function (error) {
        if (mine !== generation) { return; }
        loading.delete(pageIndex);
        // Not again until the view grows (no retry loop at every frame).
        store([], { page: pageIndex, total: total });
        state.textContent = error.message;
      });
    }

    // ---- rendering ----
    function hostName(id) { return id ? (hosts[id] || id) : ""; }
    function withoutHostPrefix(message, host) {
      // Shipyard's own events start with "[<host>] ": the host column already says it.
      if (host && message.charAt(0) === "[") {
        var end = message.indexOf("] ");
        if (end > 0 && message.slice(1, end).indexOf(host) === 0) { return message.slice(end + 2); }
      }
      return message;
    }
    function buildRow(entry, index) {
      var number = index + base;
      var row = document.createElement("div");
      // A script's line is styled by its stream (stderr subdued), never by a level; levels
      // colour Shipyard's own events (no stream) only.
      var classes = ["line", entry.stream ? "stream-" + entry.stream : "lvl-" + entry.level];
      if (search.set.has(number)) { classes.push("hit"); }
      if (search.matches[search.index] === number) { classes.push("hit-current"); }
      if (target === number) { classes.push("target"); }
      row.className = classes.join(" ");
      row.dataset.line = String(number);
      row.dataset.seq = String(entry.seq);
      row.dataset.host = entry.host_id || "";
      row.dataset.level = entry.level;
      var anchor = document.createElement("a");
      anchor.className = "ln";
      anchor.href = "#L" + number;
      anchor.textContent = String(number);
      anchor.setAttribute("aria-label", "Line " + number);
      row.appendChild(anchor);
      var when = document.createElement("span");
      when.className = "ts";
      var date = new Date(entry.timestamp);
      when.textContent = isNaN(date) ? "" : timeFormat.format(date);
      when.title = entry.timestamp;
      row.appendChild(when);
      row.appendChild(document.createTextNode(" "));
      if (!entry.stream && entry.level !== "INFO") {
        var level = document.createElement("span");
        level.className = "lvl";
        level.textContent = entry.level;
        row.appendChild(level);
        row.appendChild(document.createTextNode(" "));
      }
      var host = hostName(entry.host_id);
      if (host) {
        var hostEl = document.createElement("span");
        hostEl.className = "host";
        hostEl.textContent = host;
        row.appendChild(hostEl);
        row.appendChild(document.createTextNode(": "));
      }
      var message = document.createElement("span");
      message.className = "msg";
      renderMessage(message, withoutHostPrefix(entry.message, host), search.pattern);
      row.appendChild(message);
      return row;
    }
    function render() {
      frame = 0;
      spacer.style.height = Math.min(total * ROW, MAX_PX) + "px";
      var first = Math.min(firstIndex(), Math.max(0, total - 1));
      var from = Math.max(0, first - MARGIN);
      var to = Math.min(total, first + visibleRows() + MARGIN);
      var fragment = document.createDocumentFragment();
      var wanted = new Set();
      for (var index = from; index < to; index++) {
        var entry = lineAt(index);
        if (entry) { fragment.appendChild(buildRow(entry, index)); continue; }
        var pageIndex = Math.floor(index / PAGE);
        var page = pages.get(pageIndex);
        // A page never fetched whole, or fetched when the view was shorter, is fetched (again).
        if (!page || page.fetchedAt < total) { wanted.add(pageIndex); }
        var pending = document.createElement("div");
        pending.className = "line-pending";
        pending.textContent = "…";
        fragment.appendChild(pending);
      }
      rowsEl.replaceChildren(fragment);
      rowsEl.style.top = (scaled() ? log.scrollTop - (first - from) * ROW : from * ROW) + "px";
      wanted.forEach(load);
      evict(Math.floor(from / PAGE), Math.floor(to / PAGE));
    }
    function schedule() { if (!frame) { frame = window.requestAnimationFrame(render); } }

    // ---- follow-tail ----
    function setFollowing(on) {
      following = on;
      follow.setAttribute("aria-pressed", on ? "true" : "false");
      follow.textContent = on ? "Pause auto-scroll" : "Resume auto-scroll";
      if (on) { toBottom(); schedule(); }
    }
    follow.addEventListener("click", function () { setFollowing(!following); });
    log.addEventListener("scroll", function () {
      var programmatic = Math.abs(log.scrollTop - expectedTop) < 2;
      expectedTop = -1;
      if (!programmatic) {
        // Scrolling up to read stops the tail; scrolling back to the bottom resumes it.
        var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < ROW;
        if (following !== atBottom) { setFollowing(atBottom); }
      }
      schedule();
    });

    // ---- jumps: permalinks, search hits, landmarks ----
    function jumpTo(number, mark) {
      if (!number || number < 1) { return; }
      if (following) { setFollowing(false); }
      if (mark) { target = number; }
      // A line retention pruned shows the first line kept.
      var index = Math.max(0, Math.min(number - base, Math.max(total, 1) - 1));
      var first = firstIndex(), rows = visibleRows();
      if (index < first || index >= first + rows - 1 || scaled()) {
        scrollTo(topFor(index) - (scaled() ? 0 : Math.floor(rows / 2) * ROW));
      }
      schedule();
    }
    function fromHash() {
      var match = /^#L(\d+)$/.exec(window.location.hash);
      if (match) { jumpTo(parseInt(match[1], 10), true); }
      return !!match;
    }
    window.addEventListener("hashchange", fromHash);

    function showHits() {
      if (!search.count) { hitsEl.textContent = search.pattern === null ? "" : "No match."; return; }
      var of = search.truncated ? search.matches.length + "+ (" + search.count + " in all)" : String(search.count);
      hitsEl.textContent = (search.index + 1) + " of " + of;
    }
    function clearSearch() {
      search = { matches: [], set: new Set(), index: -1, count: 0, truncated: false, pattern: null };
      hitsEl.textContent = "";
    }
    function runSearch() {
      var text = searchInput.value;
      if (!text) { clearSearch(); schedule(); return; }
      var regex = regexBox.checked, mine = generation;
      hitsEl.textContent = "Searching…";
      getJson(api + "/logs/search?" + query({ q: text, regex: regex ? "true" : "false", limit: 1000 })).then(function (data) {
        if (mine !== generation) { return; }
        var pattern = null;
        try { pattern = new RegExp(regex ? text : escapeRegExp(text), "gi"); } catch (e) { pattern = null; }
        search = {
          matches: data.matches, set: new Set(data.matches), index: data.matches.length ? 0 : -1,
          count: data.count, truncated: data.truncated, pattern: pattern || /(?!)/g,
        };
        showHits();
        if (data.matches.length) { jumpTo(data.matches[0], false); } else { schedule(); }
      }).catch(function (error) { hitsEl.textContent = error.message; });
    }
    function step(delta) {
      if (!search.matches.length) { return; }
      search.index = (search.index + delta + search.matches.length) % search.matches.length;
      showHits();
      jumpTo(search.matches[search.index], false);
    }
    searchForm.addEventListener("submit", function (event) { event.preventDefault(); runSearch(); });
    document.getElementById("log-next").addEventListener("click", function () { step(1); });
    document.getElementById("log-prev").addEventListener("click", function () { step(-1); });

    function landmark(pick) {
      getJson(api + "/logs/landmarks?" + query()).then(function (data) {
        var found = pick(data);
        if (found) { window.location.hash = "#L" + found; fromHash(); }
        else { state.textContent = "Nothing to jump to in this view."; }
      }).catch(function (error) { state.textContent = error.message; });
    }
    document.getElementById("log-first-error").addEventListener("click", function () {
      landmark(function (data) { return data.first_error_line; });
    });
    document.getElementById("log-first-failed").addEventListener("click", function () {
      landmark(function (data) { return data.first_failed_script && data.first_failed_script.line; });
    });

    // ---- display toggles ----
    timesButton.addEventListener("click", function () {
      var shown = timesButton.getAttribute("aria-pressed") !== "true";
      timesButton.setAttribute("aria-pressed", shown ? "true" : "false");
      log.classList.toggle("hide-times", !shown);
    });
    function setFullscreen(on) {
      card.classList.toggle("log-fullscreen", on);
      fullButton.setAttribute("aria-pressed", on ? "true" : "false");
      fullButton.textContent = on ? "Exit full screen" : "Full screen";
      if (following) { toBottom(); }
      schedule();
    }
    fullButton.addEventListener("click", function () { setFullscreen(!card.classList.contains("log-fullscreen")); });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && card.classList.contains("log-fullscreen")) { setFullscreen(false); }
    });
    window.addEventListener("resize", schedule);

    // ---- live lines ----
    function matches(entry) {
      return (!view.host || entry.host_id === view.host) &&
        (!view.script || entry.deployment_script_id === view.script) &&
        (!view.level || entry.level === view.level) &&
        (!view.stream || entry.stream === view.stream) &&
        !view.failedOnly;  // a script's failure is known at its end: such views reload then
    }
    function appendLive(raw) {
      if (!matches(raw)) { return; }
      var entry = {
        line: total + base, seq: raw.seq, timestamp: raw.timestamp, host_id: raw.host_id,
        script_id: raw.deployment_script_id, level: raw.level, stream: raw.stream || null, message: raw.message,
      };
      total += 1;
      store([entry]);
    }
    function openStream(after) {
      if (ended || !log.dataset.stream) { return; }
      var mine = generation;
      source = new EventSource(log.dataset.stream + "?after=" + (after || 0));
      source.addEventListener("open", function () { if (mine === generation) { state.textContent = "Live."; } });
      source.addEventListener("log", function (event) {
        if (mine !== generation) { return; }
        appendLive(JSON.parse(event.data));
        if (following) { spacer.style.height = Math.min(total * ROW, MAX_PX) + "px"; toBottom(); }
        schedule();
      });
      source.addEventListener("end", function (event) {
        var status = JSON.parse(event.data).status;
        source.close();
        source = null;
        ended = true;
        endedStatus = status;
        state.textContent = "Finished: " + status + ".";
        log.dataset.ended = status;
        document.body.dispatchEvent(new CustomEvent("deployment-ended", { detail: { status: status } }));
        if (view.failedOnly) { reload(); }
      });
      source.addEventListener("error", function () {
        if (ended || mine !== generation) { return; }
        // EventSource reconnects by itself, resuming after the last id it saw.
        state.textContent = "Connection lost; reconnecting…";
      });
    }
    window.addEventListener("pagehide", function () { if (source) { source.close(); } });

    // ---- (re)loading a view ----
    function reload(useHash) {
      generation += 1;
      if (source) { source.close(); source = null; }
      pages = new Map();
      loading = new Map();
      total = 0;
      base = 1;
      target = null;
      clearSearch();
      var mine = generation;
      rowsEl.replaceChildren();
      var filtered = view.host || view.script || view.level || view.stream || view.failedOnly;
      // Following: the last lines (one backward index scan); otherwise the first ones.
      var first = getJson(api + "/logs?" + query(following && !(useHash && window.location.hash) ? { tail: "true", limit: PAGE } : { offset: 0, limit: PAGE }));
      // The live stream resumes after the whole log's last line, not the filtered view's.
      var whole = filtered && !ended ? getJson(api + "/logs?offset=0&limit=1") : first;
      Promise.all([first, whole]).then(function (answers) {
        if (mine !== generation) { return; }
        var data = answers[0];
        total = data.total;
        base = data.first_line || 1;
        store(data.lines, { page: Math.floor(data.offset / PAGE), total: data.offset % PAGE === 0 ? total : -1 });
        spacer.style.height = Math.min(total * ROW, MAX_PX) + "px";
        if (!(useHash && fromHash()) && following) { toBottom(); }
        render();
        if (ended) { state.textContent = "Finished: " + endedStatus + "."; }
        openStream(answers[1].last_seq);
      }).catch(function (error) {
        if (mine === generation) { state.textContent = error.message; }
      });
    }

    function setView(next) {
      view = next;
      var listed = Array.prototype.some.call(hostSelect.options, function (option) { return option.value === view.host; });
      hostSelect.value = view.host && listed ? view.host : "";
      var narrowed = view.script || view.failedOnly || (view.host && !hostSelect.value);
      filterNote.hidden = !narrowed;
      if (narrowed) {
        var parts = [];
        if (view.host) { parts.push("host " + hostName(view.host)); }
        if (view.script) { parts.push("one script"); }
        if (view.failedOnly) { parts.push("failed scripts only"); }
        filterNote.querySelector("span").textContent = "Showing " + parts.join(", ") + ".";
      }
      reload();
    }
    function fromControls() {
      setView({
        host: hostSelect.value || null, script: view.script, level: levelSelect.value || null,
        stream: streamSelect.value || null, failedOnly: view.failedOnly,
      });
    }
    hostSelect.addEventListener("change", fromControls);
    levelSelect.addEventListener("change", fromControls);
    streamSelect.addEventListener("change", fromControls);
    document.getElementById("log-filter-clear").addEventListener("click", function () {
      setView({ host: null, script: null, level: levelSelect.value || null, stream: streamSelect.value || null, failedOnly: false });
    });

    // The contract with the results grid: filter({host, script, failedOnly}) or the event.
    function filter(options) {
      options = options || {};
      setView({
        host: options.host || null, script: options.script || null, level: levelSelect.value || null,
        stream: streamSelect.value || null, failedOnly: !!options.failedOnly,
      });
    }
    window.shipyardLog = { filter: filter, jumpTo: function (number) { window.location.hash = "#L" + number; } };
    document.addEventListener("shipyard:log-filter", function (event) { filter(event.detail); });

    reload(true);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", setup); }
  else { setup(); }
})();
