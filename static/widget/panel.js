/* The widget's panel, inside the loader's iframe. It takes commands from the loader over the
   MessageChannel the loader hands it (only from its parent, only from a site the tenant allows),
   opens the apps in a frame of its own, and tells the loader what the visitor should notice:
   a new agent message while the panel is closed (the unread badge), a started conversation. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("widget-config").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var home = $("home"), app = $("app"), appFrame = $("app-frame"), title = $("title");
  var back = $("back"), results = $("results"), query = $("q"), announce = $("announce");
  var port = null, visible = false, unread = 0, current = "", prefill = null, hostStore = {};
  var lang = config.lang;

  function tell(message) { if (port) port.postMessage(message); }

  /* ---------------------------------------------------------------- the channel */
  window.addEventListener("message", function (event) {
    var data = event.data || {};
    if (event.source === window.parent && data.type === "portal-widget:init" && event.ports[0]) {
      var allowed = event.origin === location.origin || config.sites.indexOf(event.origin) >= 0 ||
        config.sites.indexOf("*") >= 0;
      if (!allowed) return; // (frame-ancestors already keeps other sites out)
      port = event.ports[0];
      port.onmessage = command;
      visible = !!data.open;
      hostStore = data.store && typeof data.store === "object" ? data.store : {};
      return;
    }
    // The app inside (the messenger) tells us about its messages; same origin, our frame only.
    if (event.source === appFrame.contentWindow && event.origin === location.origin && data.type === "portal-chat") {
      fromApp(data);
    }
  });

  function command(event) {
    var m = event.data || {};
    if (m.cmd === "open") {
      visible = true;
      unread = 0;
      if (m.app === "kb") showHome(m.arg ? m.arg.query : "");
      else if (m.app) openApp(m.app, m.arg);
      focusFirst();
    } else if (m.cmd === "closed") {
      visible = false;
    } else if (m.cmd === "identify") {
      identify(m.token);
    } else if (m.cmd === "logout") {
      hostStore = {};
      post("/widget/logout", null).then(function () { if (current) openApp(current); });
    } else if (m.cmd === "page") {
      hostPage = { url: m.url, title: m.title };
      tellPage();
    } else if (m.cmd === "prefill") {
      prefill = m.values;
      fillChat();
    }
  }

  // The host page the visitor is on, for the chat (which tells the agents).
  var hostPage = null;
  function tellPage() {
    if (hostPage && current === "chat" && appFrame.contentWindow) {
      appFrame.contentWindow.postMessage(
        { type: "portal-widget:page", url: hostPage.url, title: hostPage.title }, location.origin
      );
    }
  }

  function fromApp(data) {
    if (data.event === "escape") return tell({ type: "close" });
    if (data.event === "store") {
      var item = data.data || {};
      if (typeof item.key !== "string") return;
      if (typeof item.value === "string") hostStore[item.key] = item.value;
      else delete hostStore[item.key];
      return tell({ type: "store", key: item.key, value: typeof item.value === "string" ? item.value : null });
    }
    if (data.event === "message") {
      if (!visible) {
        unread += 1;
        tell({ type: "unread", count: unread });
      }
      announce.textContent = data.data && data.data.author_name ? data.data.author_name : "";
    }
    tell({ type: "event", name: data.event, data: data.data || null });
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body || {})
    });
  }

  function identify(token) {
    post("/widget/identify", { token: token }).then(function (response) {
      if (response.ok) {
        if (current === "tickets" || current === "chat") openApp(current);
        return;
      }
      return response.json().then(function (data) {
        tell({ type: "identity-refused", reason: data && data.error ? data.error : "status " + response.status });
      });
    }).catch(function () { /* offline: stay anonymous */ });
  }

  /* ---------------------------------------------------------------- views */
  function showHome(text) {
    current = "";
    app.hidden = true;
    home.hidden = false;
    back.hidden = true;
    title.textContent = title.getAttribute("data-home");
    appFrame.removeAttribute("src");
    if (query && typeof text === "string" && text) {
      query.value = text;
      search(text, false);
    }
  }

  // The chat's own store lives in the host page (first-party storage, or memory without
  // consent): handed over in the fragment, never sent to a server.
  function storage() { return "#store=" + encodeURIComponent(JSON.stringify(hostStore)); }

  var PATHS = {
    chat: function () { return "/messenger?embed=1&lang=" + encodeURIComponent(lang) + storage(); },
    form: function (id) { return "/forms/" + ((id | 0) || config.form) + "?embed=1&lang=" + encodeURIComponent(lang); },
    tickets: function () { return "/portal/tickets?embed=1"; },
    article: function (arg) {
      var slug = typeof arg === "string" ? arg : arg.slug;
      var language = typeof arg === "string" ? lang : arg.lang || lang;
      return "/widget/article/" + encodeURIComponent(language) + "/" + encodeURIComponent(slug);
    }
  };

  function openApp(name, arg) {
    var needs = name === "article" ? "kb" : name; // articles come with the help center
    if (!PATHS[name] || config.apps.indexOf(needs) < 0) return showHome("");
    current = name;
    home.hidden = true;
    app.hidden = false;
    back.hidden = false;
    var button = document.querySelector('[data-app="' + name + '"]');
    title.textContent = button ? button.getAttribute("data-title") : (arg && arg.title) || config.name;
    appFrame.title = title.textContent;
    appFrame.src = PATHS[name](arg);
  }

  appFrame.addEventListener("load", function () { fillChat(); tellPage(); });

  // Names and the first message the host page knows already: typed into the chat's form.
  function fillChat() {
    if (!prefill || current !== "chat") return;
    try {
      var doc = appFrame.contentDocument;
      ["name", "email"].forEach(function (key) {
        var input = doc.querySelector('input[name="' + key + '"]');
        if (input && prefill[key] && !input.value) input.value = prefill[key];
      });
      var text = doc.querySelector("textarea");
      if (text && prefill.message && !text.value) text.value = prefill.message;
    } catch (err) { /* not loaded yet */ }
  }

  document.querySelectorAll("[data-app]").forEach(function (button) {
    button.addEventListener("click", function () { openApp(button.getAttribute("data-app")); });
  });
  back.addEventListener("click", function () { showHome(""); focusFirst(); });
  $("close").addEventListener("click", function () { tell({ type: "close" }); });

  /* ---------------------------------------------------------------- search */
  var timer = 0, latest = 0;

  function search(text, record) {
    var mine = ++latest;
    // Every language: a question typed in Chinese finds the Chinese article whatever the UI's.
    var url = "/kb/search.json?limit=5&q=" + encodeURIComponent(text) +
      (record ? "&record=1" : "");
    fetch(url, { headers: { Accept: "application/json" } }).then(function (r) { return r.json(); }).then(function (data) {
      if (mine !== latest) return;
      results.textContent = "";
      (data.results || []).forEach(function (hit) {
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = hit.url;
        link.textContent = hit.title;
        link.addEventListener("click", function (event) { // read it here; the link still opens
          event.preventDefault();                         // the help center in a new tab
          var slug = decodeURIComponent(hit.url.split("/").pop());
          openApp("article", { slug: slug, lang: hit.language, title: hit.title });
        });
        var snippet = document.createElement("p");
        snippet.innerHTML = hit.snippet; // escaped by the server; only <mark> is markup
        item.append(link, snippet);
        results.appendChild(item);
      });
    }).catch(function () { /* offline: keep what is shown */ });
  }

  if (query) {
    query.addEventListener("input", function () {
      clearTimeout(timer);
      var text = query.value.trim();
      if (!text) { results.textContent = ""; return; }
      timer = setTimeout(function () { search(text, false); }, 150);
    });
    $("search").addEventListener("submit", function (event) {
      event.preventDefault();
      if (query.value.trim()) search(query.value.trim(), true);
    });
  }

  /* ---------------------------------------------------------------- keyboard */
  function focusables() {
    return Array.prototype.filter.call(
      document.querySelectorAll("button, input, a[href], iframe"),
      function (el) { return !el.hidden && el.offsetParent !== null; }
    );
  }

  function focusFirst() {
    var first = query && !home.hidden ? query : focusables()[0];
    if (first) first.focus();
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      tell({ type: "close" });
    } else if (event.key === "Tab") { // focus stays in the panel while it is open
      var items = focusables();
      if (!items.length) return;
      var first = items[0], last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) { last.focus(); event.preventDefault(); }
      else if (!event.shiftKey && document.activeElement === last) { first.focus(); event.preventDefault(); }
    }
  });
})();
