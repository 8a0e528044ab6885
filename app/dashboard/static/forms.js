// Forms that change something (method="post") are sent once: while the answer is on its way
// the form refuses a second submit (a double click, an impatient second click) and its
// buttons are disabled; the page an action leads to takes no action for a second. A form
// with data-confirm asks first (rollback). The server guards too: actions redirect
// (Post/Redirect/Get) and a rollback names the version it leaves.
(function () {
  "use strict";

  function buttons(form) {
    return form.querySelectorAll("button, input[type=submit]");
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
    if (form.dataset.submitting) {
      event.preventDefault();
      return;
    }
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    if (form.method.toLowerCase() !== "post") return;  // a search may be sent again
    form.dataset.submitting = "1";
    form.setAttribute("aria-busy", "true");
    // After this event: the browser builds the request first (our buttons carry no value).
    window.setTimeout(function () {
      buttons(form).forEach(function (button) { button.disabled = true; });
    }, 0);
  });

  // The page an action redirected to (it shows the action's notice) takes no second action
  // for a moment: an impatient second click lands here, not on a page still waiting.
  var COOLDOWN_MS = 1000;
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("main > .notice[role=status]")) return;
    var paused = [];
    document.querySelectorAll("form[method=post]:not(.logout)").forEach(function (form) {
      buttons(form).forEach(function (button) {
        if (button.disabled) return;
        button.disabled = true;
        paused.push(button);
      });
    });
    window.setTimeout(function () {
      paused.forEach(function (button) { button.disabled = false; });
    }, COOLDOWN_MS);
  });

  // Back to a page restored from the browser's memory: its forms can be used again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-submitting]").forEach(function (form) {
      delete form.dataset.submitting;
      form.removeAttribute("aria-busy");
      buttons(form).forEach(function (button) { button.disabled = false; });
    });
  });
})();
