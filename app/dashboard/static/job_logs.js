// The Jobs list polls every 2 s. A job's log tail is up to 80 lines, so a poll asks only for
// the logs of the jobs whose "Log and fields" are open (open=3,7) and the server sends only
// those (app/dashboard/pages/jobs.py); opening one whose log was left out polls at once.
(function () {
  "use strict";
  var LIST_ID = "jobs-list";

  function openJobs(list) {
    return Array.prototype.map.call(
      list.querySelectorAll("details[data-job-log][open]"),
      function (details) { return details.dataset.jobLog; });
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var list = event.detail.elt;
    if (!list || list.id !== LIST_ID) return;
    var ids = openJobs(list);
    if (ids.length) event.detail.parameters.open = ids.join(",");
  });

  // "toggle" does not bubble: listen while it goes down to the <details>.
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (!(details instanceof HTMLDetailsElement) || !details.open || !details.dataset.jobLog) return;
    if (!details.querySelector("[data-log-omitted]")) return;  // its log came with the list
    var list = document.getElementById(LIST_ID);
    if (list && window.htmx) window.htmx.trigger(list, "log-opened");
  }, true);
})();
