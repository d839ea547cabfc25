/* The help widget's loader: a launcher on the host page, the panel (our iframe) on first click.
   Before that click it stores nothing, opens no iframe or socket and makes no request.
   Everything it draws lives in a shadow root on a custom element, styled by a
   constructable stylesheet: the host's CSS cannot reach in, ours cannot leak out, and a strict
   CSP needs no 'unsafe-inline'. The host drives it with PortalWidget(command, ...args). */
(function () {
  "use strict";
  var C = /*CONFIG*/null;
  var w = window, d = document;
  var api = w.PortalWidget;
  if (api && api.loaded) {
    console.warn("PortalWidget: the widget script is included twice; the second copy does nothing.");
    return;
  }
  var me = d.currentScript;
  var ORIGIN = me && me.src ? new URL(me.src).origin : C.origin;
  var TAG = "portal-help-widget";
  var APPS = { kb: 1, article: 1, chat: 1, form: 1, tickets: 1 };
  var EVENTS = { ready: 1, open: 1, close: 1, unread: 1, message: 1, conversation: 1, error: 1 };
  var handlers = {};
  var state = { open: false, shown: C.visible, ready: false, unread: 0, lang: C.lang, consent: "functional" };
  var frame = null, port = null, outbox = [], identity = null, refreshTimer = 0;
  // The chat's store (its visitor token): first-party storage of this page, read only once the
  // visitor opened the widget, kept in memory alone without consent.
  var STORE = "portal-widget:" + ORIGIN, stored = null;

  function fail(message) { throw new Error("PortalWidget: " + message); }

  function emit(name, data) {
    (handlers[name] || []).slice().forEach(function (fn) {
      try { fn(data); } catch (err) { console.error(err); }
    });
  }

  /* ---------------------------------------------------------------- drawing */
  var host = d.createElement(TAG);
  var root = host.attachShadow({ mode: "open" });
  var COLOR = /^#[0-9a-fA-F]{6}$/;
  // The launcher's look: the tenant's colour and side, unless the page chose its own ("style").
  function styles(position, color) {
    var side = position === "left" ? "inset-inline-start" : "inset-inline-end";
    color = COLOR.test(color) ? color : "#1f6feb";
    return (
      ":host{all:initial;position:fixed;" + side + ":" + (C.offset[0] | 0) + "px;inset-block-end:" +
      (C.offset[1] | 0) + "px;z-index:" + (C.z | 0) + ";font:16px/1.4 system-ui,sans-serif;color:#1b1f24}" +
      ":host([hidden]){display:none}" +
      "button.launch{all:unset;box-sizing:border-box;display:flex;align-items:center;gap:8px;cursor:pointer;" +
      "min-height:48px;padding:0 18px;border-radius:24px;background:" + color + ";color:#fff;" +
      "font:600 16px/1 system-ui,sans-serif;box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
      "button.launch:focus-visible{outline:3px solid #1b1f24;outline-offset:3px}" +
      "svg{width:22px;height:22px;fill:currentColor}" +
      ".badge{min-width:20px;height:20px;border-radius:10px;background:#d1242f;color:#fff;" +
      "font:700 12px/20px system-ui,sans-serif;text-align:center;padding:0 5px;box-sizing:border-box}" +
      ".badge[hidden]{display:none}" +
      ".panel{display:none;position:absolute;inset-block-end:60px;" + side + ":0;width:380px;" +
      "height:min(640px,calc(100vh - 100px));border-radius:14px;overflow:hidden;background:#fff;" +
      "box-shadow:0 8px 30px rgba(0,0,0,.3)}" +
      ".panel.open{display:block}" +
      "iframe{border:0;width:100%;height:100%;display:block}" +
      "@media (max-width:480px){.panel{position:fixed;inset:0;width:100vw;height:100dvh;border-radius:0}" +
      ".panel.open+button.launch{display:none}}");
  }
  var sheet = new CSSStyleSheet();
  sheet.replaceSync(styles(C.position, C.color));
  root.adoptedStyleSheets = [sheet];

  var panel = d.createElement("div");
  panel.className = "panel";
  panel.id = "panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", C.name);
  var button = d.createElement("button");
  button.className = "launch";
  button.type = "button";
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "panel");
  var icon = d.createElementNS("http://www.w3.org/2000/svg", "svg");
  icon.setAttribute("viewBox", "0 0 24 24");
  icon.setAttribute("aria-hidden", "true");
  var path = d.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
  icon.appendChild(path);
  var label = d.createElement("span");
  label.textContent = C.strings.label;
  var badge = d.createElement("span");
  badge.className = "badge";
  badge.hidden = true;
  badge.setAttribute("aria-live", "polite");
  button.append(icon, label, badge);
  root.append(panel, button);
  host.hidden = !state.shown;

  function labelButton() {
    button.setAttribute("aria-label", (state.open ? C.strings.close : C.strings.open) +
      (state.unread ? " (" + state.unread + " " + C.strings.unread + ")" : ""));
  }
  labelButton();

  function mount() {
    if (!host.isConnected) (d.body || d.documentElement).appendChild(host);
  }

  /* ---------------------------------------------------------------- the panel */
  function send(message) {
    if (port) port.postMessage(message);
    else outbox.push(message);
  }

  function persist() {
    try {
      if (state.consent === "functional") w.localStorage.setItem(STORE, JSON.stringify(stored));
      else w.localStorage.removeItem(STORE);
    } catch (err) { /* refused: memory for this page's lifetime */ }
  }

  function ensureFrame() {
    if (frame) return;
    stored = {};
    try {
      if (state.consent === "functional") stored = JSON.parse(w.localStorage.getItem(STORE) || "{}") || {};
    } catch (err) { stored = {}; }
    frame = d.createElement("iframe");
    frame.title = C.name;
    frame.allow = "clipboard-write";
    frame.src = ORIGIN + C.panel + "?lang=" + encodeURIComponent(state.lang);
    frame.addEventListener("load", connect);
    panel.appendChild(frame);
  }

  // Each load of the panel gets a fresh channel; the init goes to our origin only.
  function connect() {
    var channel = new MessageChannel();
    port = channel.port1;
    port.onmessage = fromPanel;
    frame.contentWindow.postMessage(
      { type: "portal-widget:init", open: state.open, store: stored }, ORIGIN, [channel.port2]
    );
    if (identity) send({ cmd: "identify", token: identity.token });
    send({ cmd: "page", url: location.href, title: d.title });
    outbox.splice(0).forEach(send);
  }

  function fromPanel(event) {
    var m = event.data || {};
    if (m.type === "close") close();
    else if (m.type === "unread") setUnread(m.count | 0);
    else if (m.type === "event" && EVENTS[m.name]) emit(m.name, m.data);
    else if (m.type === "identity-refused") console.warn("PortalWidget: identify refused: " + m.reason);
    else if (m.type === "store" && typeof m.key === "string") {
      if (typeof m.value === "string" && m.value.length < 8192) stored[m.key] = m.value;
      else delete stored[m.key];
      persist();
    }
  }

  function setUnread(count) {
    if (state.open) count = 0;
    if (count === state.unread) return;
    state.unread = count;
    badge.textContent = count ? String(count) : "";
    badge.hidden = !count;
    labelButton();
    emit("unread", count);
  }

  function open(app, arg) {
    if (!state.shown) show();
    ensureFrame();
    state.open = true;
    panel.classList.add("open");
    button.setAttribute("aria-expanded", "true");
    setUnread(0);
    labelButton();
    send({ cmd: "open", app: app || "", arg: arg === undefined ? null : arg });
    frame.focus();
    emit("open");
  }

  function close() {
    if (!state.open) return;
    state.open = false;
    panel.classList.remove("open");
    button.setAttribute("aria-expanded", "false");
    labelButton();
    send({ cmd: "closed" });
    button.focus({ preventScroll: true });
    emit("close");
  }

  function show() { state.shown = true; host.hidden = false; }
  function hide() { close(); state.shown = false; host.hidden = true; }

  button.addEventListener("click", function () { state.open ? close() : open(); });
  root.addEventListener("keydown", function (e) { if (e.key === "Escape") close(); });

  /* ---------------------------------------------------------------- identity */
  function expiry(token) {
    try {
      var body = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(body)).exp * 1000;
    } catch (err) { return 0; }
  }

  function identify(source) {
    clearTimeout(refreshTimer);
    var fetchToken = typeof source === "function" ? source : function () { return source; };
    return Promise.resolve(fetchToken()).then(function (token) {
      if (typeof token !== "string" || token.split(".").length !== 3) {
        fail("identify needs a signed JWT (three dot-separated parts), or a function that returns one");
      }
      identity = { token: token };
      if (port) send({ cmd: "identify", token: token });
      var exp = expiry(token);
      if (typeof source === "function" && exp) {
        refreshTimer = setTimeout(function () {
          identify(source).catch(function (err) { emit("error", err); });
        }, Math.max(exp - Date.now() - 60000, 5000));
      }
    });
  }

  /* ---------------------------------------------------------------- the API */
  function check(ok, message) { if (!ok) fail(message); }

  var commands = {
    open: function (app, arg) {
      if (app === undefined) return open();
      check(APPS[app] === 1, 'open takes "kb", "article", "chat", "form" or "tickets", not ' + JSON.stringify(app));
      if (app === "article") check(typeof arg === "string" && arg, 'open "article" needs the article\'s slug');
      if (app === "form") check(arg === undefined || (arg | 0) > 0, 'open "form" takes a form id (a number)');
      if (app === "kb") check(arg === undefined || (arg && typeof arg.query === "string"), 'open "kb" takes {query: "..."}');
      open(app, arg);
    },
    close: close,
    toggle: function () { state.open ? close() : open(); },
    show: show,
    hide: hide,
    identify: function (source) {
      check(typeof source === "string" || typeof source === "function", "identify takes a token or a function returning one");
      return identify(source);
    },
    logout: function () {
      clearTimeout(refreshTimer);
      identity = null;
      if (stored) { stored = {}; persist(); }
      send({ cmd: "logout" });
    },
    locale: function (lang) {
      check(typeof lang === "string" && /^[a-zA-Z-]{2,10}$/.test(lang), "locale takes a language code such as \"nb\"");
      state.lang = lang;
      if (frame) frame.src = ORIGIN + C.panel + "?lang=" + encodeURIComponent(lang);
    },
    prefill: function (values) {
      check(values && typeof values === "object", "prefill takes {name, email, message}");
      Object.keys(values).forEach(function (key) {
        check(/^(name|email|message)$/.test(key) && typeof values[key] === "string", "prefill takes only the strings name, email and message");
      });
      send({ cmd: "prefill", values: values });
    },
    style: function (look) {
      check(look && typeof look === "object", "style takes {color, position}");
      check(look.color === undefined || COLOR.test(look.color), "style's color is #rrggbb");
      check(look.position === undefined || look.position === "left" || look.position === "right",
        'style\'s position is "left" or "right"');
      sheet.replaceSync(styles(look.position || C.position, look.color || C.color));
    },
    consent: function (level) {
      check(level === "none" || level === "functional", 'consent is "none" or "functional"');
      state.consent = level;
      if (stored) persist(); // "none" forgets what was kept; "functional" keeps what is known
    },
    on: function (name, fn) {
      check(EVENTS[name] === 1, "unknown event " + JSON.stringify(name) + "; events: " + Object.keys(EVENTS).join(", "));
      check(typeof fn === "function", "on needs a function");
      (handlers[name] = handlers[name] || []).push(fn);
      if (name === "ready" && state.ready) setTimeout(fn, 0);
      return function () {
        handlers[name] = (handlers[name] || []).filter(function (f) { return f !== fn; });
      };
    }
  };

  function run(command, args) {
    if (!Object.prototype.hasOwnProperty.call(commands, command)) {
      fail("unknown command " + JSON.stringify(command) + "; commands: " + Object.keys(commands).join(", "));
    }
    return commands[command].apply(null, args);
  }

  function PortalWidget(command) {
    var args = Array.prototype.slice.call(arguments, 1);
    return new Promise(function (resolve) { resolve(run(command, args)); });
  }
  PortalWidget.loaded = true;
  w.PortalWidget = PortalWidget;

  /* ---------------------------------------------------------------- single-page apps */
  function navigated() {
    mount();
    send({ cmd: "page", url: location.href, title: d.title });
  }
  ["pushState", "replaceState"].forEach(function (name) {
    var original = history[name];
    history[name] = function () {
      var result = original.apply(this, arguments);
      navigated();
      return result;
    };
  });
  w.addEventListener("popstate", navigated);

  function start() {
    mount();
    (api && api.q || []).forEach(function (call) {
      PortalWidget.apply(null, call).catch(function (err) { console.warn(err.message); emit("error", err); });
    });
    state.ready = true;
    emit("ready");
  }
  if (d.body) start();
  else d.addEventListener("DOMContentLoaded", start);
})();
