// Polled panels (htmx hx-get) when refreshing fails. htmx swaps nothing on an HTTP error or
// when the server does not answer, so a panel would keep showing its last data as if it were
// current. Here such a panel is marked stale ("data from HH:MM:SS") and the banner at the top
// says what fails and since when; the next good refresh clears both. While the database is
// down the server answers a poll with a small 503 fragment (X-Dashboard-Outage: database):
// it holds no data (no session can be checked) and is swapped in, so the overview's Database
// card reads "down".
(function () {
  "use strict";
  var OUTAGE_HEADER = "X-Dashboard-Outage";
  var since = null;  // when the current run of failures began

  function clock(date) { return date.toTimeString().slice(0, 8); }

  function panelOf(event) {
    var elt = event.detail && event.detail.elt;
    return elt && elt.hasAttribute && elt.hasAttribute("hx-get") ? elt : null;
  }

  function markFailed(panel, reason) {
    panel.dataset.failure = reason;
    delete panel.dataset.outage;
    panel.classList.add("stale");
    var at = panel.dataset.updatedAt;
    panel.dataset.staleLabel = at ? "Stale: data from " + clock(new Date(Number(at))) : "No data yet";
    update();
  }

  function markOutage(panel) {
    panel.dataset.outage = "database";
    delete panel.dataset.failure;
    panel.classList.remove("stale");
    update();
  }

  function markFresh(panel) {
    panel.dataset.updatedAt = String(Date.now());
    delete panel.dataset.failure;
    delete panel.dataset.outage;
    delete panel.dataset.staleLabel;
    panel.classList.remove("stale");
    update();
  }

  function update() {
    var banner = document.getElementById("poll-problem");
    if (!banner) return;
    var failed = document.querySelectorAll("[hx-get][data-failure]");
    var outage = document.querySelectorAll("[hx-get][data-outage]");
    if (!failed.length && !outage.length) {
      since = null;
      banner.hidden = true;
      banner.textContent = "";
      return;
    }
    since = since || new Date();
    var text;
    if (failed.length) {
      var reason = failed[0].dataset.failure;
      text = (reason === "unreachable" ? "Server unreachable" : "The server answers " + reason) +
        " since " + clock(since) + "; ";
      var oldest = null;
      failed.forEach(function (panel) {
        var at = Number(panel.dataset.updatedAt || 0);
        if (at && (oldest === null || at < oldest)) oldest = at;
      });
      text += oldest ? "showing data from " + clock(new Date(oldest)) + " (marked stale)." : "no data yet.";
    } else {
      text = "Database unavailable since " + clock(since) +
        ": your session cannot be checked, so the panels show no data until it is back.";
    }
    text += " Retrying every few seconds.";
    if (banner.textContent !== text) banner.textContent = text;  // role=alert: say it once
    banner.hidden = false;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var loaded = String(Date.now());
    document.querySelectorAll("[hx-get]").forEach(function (panel) {
      // rendered with the page, unless it waits for its first load ("Loading…")
      if (!/\bload\b/.test(panel.getAttribute("hx-trigger") || "")) panel.dataset.updatedAt = loaded;
    });
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.getResponseHeader(OUTAGE_HEADER)) {
      event.detail.shouldSwap = true;  // a 503 that holds the panel's message, not an error
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var panel = panelOf(event);
    var xhr = event.detail.xhr;
    if (!panel || !xhr || !event.detail.successful) return;
    if (xhr.getResponseHeader(OUTAGE_HEADER)) markOutage(panel);
    else if (xhr.status >= 200 && xhr.status < 300) markFresh(panel);
  });

  document.addEventListener("htmx:responseError", function (event) {
    var panel = panelOf(event);
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (panel && status !== 401) markFailed(panel, "HTTP " + status);  // 401: off to log in
  });

  ["htmx:sendError", "htmx:timeout"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      var panel = panelOf(event);
      if (panel) markFailed(panel, "unreachable");
    });
  });
})();
