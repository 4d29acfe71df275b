// Garrison console: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";
  function on(sel, ev, fn) {
    document.addEventListener(ev, function (e) {
      var t = e.target.closest ? e.target.closest(sel) : null;
      if (t) fn(e, t);
    });
  }
  // Narrow screens: show / hide the navigation.
  on("[data-navtoggle]", "click", function (e, btn) {
    var nav = document.getElementById(btn.getAttribute("aria-controls"));
    var open = nav.classList.toggle("open");
    btn.setAttribute("aria-expanded", open ? "true" : "false");
  });
  // Selects that apply at once (rows per page, …).
  on("select[data-autosubmit]", "change", function (e, sel) { sel.form.submit(); });
  // Destructive forms ask first.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var msg = form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });
  // Copy buttons.
  on("[data-copy]", "click", function (e, btn) {
    var input = document.getElementById(btn.getAttribute("data-copy"));
    input.select();
    var done = function () { btn.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(done);
    else { try { document.execCommand("copy"); done(); } catch (err) { /* selected: the user copies */ } }
  });
  // Close open menus (device groups) on Escape or a click elsewhere; Escape also closes a side panel.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    var menu = document.querySelector("details[open]");
    if (menu && menu.closest(".groupfilter")) { menu.removeAttribute("open"); menu.querySelector("summary").focus(); return; }
    var close = document.querySelector("[data-panel-close]");
    if (close && !(e.target.matches && e.target.matches("input, textarea, select"))) window.location.href = close.href;
  });
  document.addEventListener("click", function (e) {
    document.querySelectorAll(".groupfilter details[open]").forEach(function (d) {
      if (!d.contains(e.target)) d.removeAttribute("open");
    });
  });
  // Side panels are pages of their list (?open=ID): remember where the list was and which row opened
  // the panel, so that opening keeps the list's scroll position and closing returns to the row.
  var PANEL_KEY = "garrison.panel";
  function listKey(href) {
    var u = new URL(href, window.location.href);
    u.searchParams.delete("open");
    u.searchParams.delete("action");
    u.searchParams.delete("sent");
    return u.pathname + "?" + u.searchParams.toString();
  }
  on("a[href*='open=']", "click", function (e, a) {
    if (a.closest(".sidepanel")) return;
    try {
      sessionStorage.setItem(PANEL_KEY, JSON.stringify({ list: listKey(window.location.href), y: window.scrollY,
                                                         opener: a.getAttribute("href") }));
    } catch (err) { /* storage off: plain navigation */ }
  });
  // A side panel opened from a link gets the focus, so keyboard users land in it.
  document.addEventListener("DOMContentLoaded", function () {
    var state = null;
    try { state = JSON.parse(sessionStorage.getItem(PANEL_KEY) || "null"); } catch (err) { state = null; }
    var same = state && state.list === listKey(window.location.href);
    if (same) window.scrollTo(0, state.y);
    var panel = document.querySelector(".sidepanel[data-focus]");
    if (panel) { var h = panel.querySelector("h2"); if (h) { h.setAttribute("tabindex", "-1"); h.focus({ preventScroll: true }); } }
    else if (same) {
      var row = null;
      document.querySelectorAll("a[href*='open=']").forEach(function (a) {
        if (!row && a.getAttribute("href") === state.opener) row = a;
      });
      if (row) row.focus({ preventScroll: true });
      sessionStorage.removeItem(PANEL_KEY);
    }
  });
})();
