// What the operator types into a form is not lost when the session ends meanwhile. Sending a
// form, or a poll, after expiry leads to the login form, which comes back to the page
// afterwards (next=) but could not bring the typed values: the form was not sent. So the
// values of every form that changes something (method="post") are kept, as they are typed,
// in this tab's sessionStorage; when this tab comes back from logging in, the page's forms
// get them back, with a note that they were not sent. Nothing is sent again by itself: the
// operator checks and sends the form, with the new page's CSRF token. Never kept: hidden
// fields (the CSRF token), password fields, the login and logout forms. A draft lives until
// the next page this tab shows other than the login form (or a logout), and a day at most.
(function () {
  "use strict";
  var DRAFT = "genrec-dashboard-draft";
  var FROM_LOGIN = "genrec-dashboard-from-login";
  var MAX_AGE_MS = 24 * 3600 * 1000;
  var NOT_TYPED = /^(hidden|password|file|submit|button|reset|image)$/;
  var SECRET_NAMES = /^(csrf_token|token|nonce)$/;

  function store() {
    try { return window.sessionStorage; } catch (e) { return null; }  // storage off: no drafts
  }

  function read(key) {
    var s = store();
    try { return s ? JSON.parse(s.getItem(key) || "null") : null; } catch (e) { return null; }
  }

  function write(key, value) {
    var s = store();
    if (!s) return;
    try {
      if (value === null) s.removeItem(key); else s.setItem(key, JSON.stringify(value));
    } catch (e) { /* full: the draft is a help, not a promise */ }
  }

  function here() { return location.pathname + location.search; }

  function kept(form) {
    return form instanceof HTMLFormElement && form.method.toLowerCase() === "post" &&
      !form.classList.contains("login") && !form.classList.contains("logout");
  }

  function fields(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && el.tagName !== "BUTTON" && !NOT_TYPED.test(el.type) &&
        !SECRET_NAMES.test(el.name);
    });
  }

  function valueOf(el) {
    return el.type === "checkbox" || el.type === "radio" ? el.checked : el.value;
  }

  function save(form) {
    var draft = read(DRAFT);
    if (!draft || draft.page !== here()) draft = { page: here(), forms: {} };
    var list = fields(form);
    draft.at = Date.now();
    draft.forms[form.getAttribute("action") || ""] = {
      names: list.map(function (el) { return el.name; }),
      values: list.map(valueOf)
    };
    write(DRAFT, draft);
  }

  function restore(form, saved) {
    var list = fields(form);
    var names = list.map(function (el) { return el.name; });
    if (names.join("\n") !== saved.names.join("\n")) return false;  // another form by now
    var changed = false;
    list.forEach(function (el, i) {
      var value = saved.values[i];
      if (valueOf(el) === value) return;
      if (typeof value === "boolean") {
        el.checked = value;
      } else if (el.tagName === "SELECT") {
        if (!Array.prototype.some.call(el.options, function (o) { return o.value === value; })) return;
        el.value = value;
      } else {
        el.value = value;
      }
      changed = true;
    });
    if (changed) {
      var note = document.createElement("p");
      note.className = "problem";
      note.setAttribute("role", "alert");
      note.dataset.testid = "draft-restored";
      note.textContent = "Your session ended before this form was sent, so it was not sent. " +
        "What you had typed is back: check it and send it again.";
      form.parentNode.insertBefore(note, form);
    }
    return changed;
  }

  function onLoginPage(login) {
    var draft = read(DRAFT);
    if (draft && Date.now() - draft.at < MAX_AGE_MS) {
      var hint = document.createElement("p");
      hint.className = "hint";
      hint.dataset.testid = "draft-kept";
      hint.textContent = "The form you were filling in (" + draft.page + ") was not sent; " +
        "after logging in it comes back with what you typed.";
      login.parentNode.insertBefore(hint, login.nextSibling);
    }
    login.addEventListener("submit", function () { write(FROM_LOGIN, { at: Date.now() }); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var login = document.querySelector("form.login");
    if (login) { onLoginPage(login); return; }  // keep the draft across (failed) logins
    var draft = read(DRAFT);
    var fromLogin = read(FROM_LOGIN);
    write(DRAFT, null);
    write(FROM_LOGIN, null);
    if (!draft || !fromLogin || draft.page !== here() || Date.now() - draft.at > MAX_AGE_MS) return;
    document.querySelectorAll("form").forEach(function (form) {
      var saved = kept(form) && draft.forms[form.getAttribute("action") || ""];
      if (saved) restore(form, saved);
    });
  });

  ["input", "change"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      var form = event.target && event.target.form;
      if (kept(form)) save(form);
    });
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.classList.contains("logout")) {
      write(DRAFT, null);  // nothing typed here outlives the session it was typed in
      write(FROM_LOGIN, null);
    }
  });
})();
