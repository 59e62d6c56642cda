// llm-proxy admin UI conveniences. Every action works without this script:
// it only localises times, copies values, toggles key visibility and asks
// for confirmation before destructive actions (the server asks too when the
// script does not run).
(function () {
  "use strict";

  function pad(n) { return String(n).padStart(2, "0"); }

  function tzName(d) {
    try {
      var parts = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(d);
      for (var i = 0; i < parts.length; i++) {
        if (parts[i].type === "timeZoneName") { return parts[i].value; }
      }
    } catch (e) { /* older browsers */ }
    return "";
  }

  function format(d, fmt) {
    var ymd = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    var hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    switch (fmt) {
      case "date_only": return ymd;
      case "ymd_hm": return ymd + " " + hm;
      case "ymd_hms_tz": return ymd + " " + hm + ":" + pad(d.getSeconds()) + " " + tzName(d);
      case "long":
        var date = d.toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" });
        var time = d.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
        return date + " at " + time;
      default: return ymd + " " + hm + ":" + pad(d.getSeconds());
    }
  }

  function localiseTimes(root) {
    var els = root.querySelectorAll('[data-local-time="true"][data-ts]');
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var d = new Date(el.getAttribute("data-ts"));
      if (isNaN(d.getTime())) { continue; }
      el.textContent = format(d, el.getAttribute("data-format"));
      el.setAttribute("title", el.getAttribute("data-ts"));
    }
  }

  function startClock() {
    var holder = document.getElementById("server-time");
    if (!holder) { return; }
    var el = holder.querySelector("[data-ts]");
    if (!el) { return; }
    var server = new Date(el.getAttribute("data-ts")).getTime();
    var offset = server - Date.now();
    setInterval(function () {
      var d = new Date(Date.now() + offset);
      el.setAttribute("data-ts", d.toISOString());
      el.setAttribute("datetime", d.toISOString());
      el.textContent = format(d, el.getAttribute("data-format"));
      el.setAttribute("title", d.toISOString());
    }, 1000);
  }

  function setupCopy() {
    var buttons = document.querySelectorAll("[data-copy-target]");
    for (var i = 0; i < buttons.length; i++) {
      var b = buttons[i];
      if (!navigator.clipboard) { continue; }
      b.hidden = false;
      b.addEventListener("click", function (ev) {
        var btn = ev.currentTarget;
        var target = document.getElementById(btn.getAttribute("data-copy-target"));
        if (!target) { return; }
        var value = target.value !== undefined && target.tagName === "INPUT" ? target.value : target.textContent;
        navigator.clipboard.writeText(value).then(function () {
          var old = btn.textContent;
          btn.textContent = "Copied";
          btn.classList.add("copied");
          setTimeout(function () { btn.textContent = old; btn.classList.remove("copied"); }, 2000);
        });
      });
    }
  }

  function setupPasswordToggles() {
    var buttons = document.querySelectorAll("[data-toggle-password]");
    for (var i = 0; i < buttons.length; i++) {
      var b = buttons[i];
      b.hidden = false;
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", function (ev) {
        var btn = ev.currentTarget;
        var input = document.getElementById(btn.getAttribute("data-toggle-password"));
        if (!input) { return; }
        var show = input.type === "password";
        input.type = show ? "text" : "password";
        btn.textContent = show ? "Hide" : "Show";
        btn.setAttribute("aria-pressed", show ? "true" : "false");
      });
    }
  }

  // Forms with data-confirm ask first; when confirmed they tell the server
  // so that it skips its own confirmation page.
  function setupConfirm() {
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      if (!form.hasAttribute || !form.hasAttribute("data-confirm")) { return; }
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        ev.preventDefault();
        return;
      }
      if (!form.querySelector('input[name="confirm"]')) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = "confirm";
        input.value = "yes";
        form.appendChild(input);
      }
    });
  }

  function init() {
    localiseTimes(document);
    startClock();
    setupCopy();
    setupPasswordToggles();
    setupConfirm();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
