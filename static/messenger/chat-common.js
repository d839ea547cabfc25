/* The messenger's shared client parts, for the visitor page and the agent console.
   No framework, no build step, no inline script (CSP script-src 'self').
   Message data goes into the page through textContent only, never as HTML. */
(function () {
  "use strict";

  var MIN_DELAY = 500;
  var MAX_DELAY = 10000;
  var PING_EVERY = 25000;
  var SILENCE_LIMIT = 60000; // no frame at all for this long: the socket is dead, reconnect

  /* ---------------------------------------------------------------- storage */
  // localStorage may be refused (third-party iframes, private modes): fall back to memory.
  // Inside the widget, a cross-site frame, browsers refuse or partition storage: there the
  // widget hands this page the host page's first-party store in the fragment (`#store=`), and
  // every change goes back to it; with no consent the host keeps it in memory only.
  var memory = {};
  var hostBacked = false;
  (function () {
    var found = /[#&]store=([^&]*)/.exec(window.location.hash);
    if (!found || window.parent === window) return;
    hostBacked = true;
    try {
      var data = JSON.parse(decodeURIComponent(found[1]));
      Object.keys(data).forEach(function (key) {
        if (typeof data[key] === "string") memory[key] = data[key];
      });
    } catch (err) { /* start empty */ }
    history.replaceState(null, "", window.location.pathname + window.location.search);
  })();

  function tellHost(key, raw) {
    window.parent.postMessage(
      { type: "portal-chat", event: "store", data: { key: key, value: raw } }, window.location.origin
    );
  }

  var store = {
    get: function (key, fallback) {
      var raw = null;
      try {
        if (hostBacked) throw new Error("the host keeps it");
        raw = window.localStorage.getItem(key);
      } catch (err) {
        raw = Object.prototype.hasOwnProperty.call(memory, key) ? memory[key] : null;
      }
      if (raw === null || raw === undefined) return fallback;
      try {
        return JSON.parse(raw);
      } catch (err) {
        return raw;
      }
    },
    set: function (key, value) {
      var raw = JSON.stringify(value);
      memory[key] = raw;
      if (hostBacked) return tellHost(key, raw);
      try {
        window.localStorage.setItem(key, raw);
      } catch (err) {
        /* memory only */
      }
    },
    remove: function (key) {
      delete memory[key];
      if (hostBacked) return tellHost(key, null);
      try {
        window.localStorage.removeItem(key);
      } catch (err) {
        /* memory only */
      }
    }
  };

  /* ---------------------------------------------------------------- helpers */
  function readConfig(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try {
      return JSON.parse(node.textContent || "{}");
    } catch (err) {
      return null;
    }
  }

  // t("typing", {name: "Sam"}) -> the translated string with %(name)s filled in (gettext's
  // placeholder style, so the catalogs' translators see the usual form). A missing key shows
  // as itself, which is easy to spot.
  function translator(strings) {
    strings = strings || {};
    return function (key, values) {
      var text = Object.prototype.hasOwnProperty.call(strings, key) ? String(strings[key]) : key;
      if (values) {
        text = text.replace(/%\((\w+)\)[sd]/g, function (all, name) {
          return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : all;
        });
      }
      return text;
    };
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }

  function initials(name) {
    var words = String(name || "").trim().split(/\s+/).filter(Boolean);
    if (!words.length) return "?";
    var first = Array.from(words[0])[0] || "";
    var last = words.length > 1 ? Array.from(words[words.length - 1])[0] || "" : "";
    return (first + last).toUpperCase();
  }

  // A stable colour per name, dark enough for white initials (WCAG AA at this size).
  function hue(name) {
    var h = 0;
    var s = String(name || "");
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) % 360;
    return h;
  }

  function avatar(name, className) {
    var node = el("span", "chat-avatar" + (className ? " " + className : ""), initials(name));
    node.style.backgroundColor = "hsl(" + hue(name) + ", 45%, 36%)";
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  function formatTime(iso, lang) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    var today = new Date();
    var sameDay = d.toDateString() === today.toDateString();
    try {
      return sameDay
        ? d.toLocaleTimeString(lang || undefined, { hour: "2-digit", minute: "2-digit" })
        : d.toLocaleString(lang || undefined, {
            month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"
          });
    } catch (err) {
      return d.toISOString().slice(0, 16).replace("T", " ");
    }
  }

  function formatSize(size) {
    var n = Number(size) || 0;
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  // Only our own paths or http(s) URLs become links; anything else (javascript:, data:) is not.
  function safeUrl(url) {
    if (typeof url !== "string") return null;
    if (/^\/(?!\/)/.test(url)) return url;
    if (/^https?:\/\//i.test(url)) return url;
    return null;
  }

  function wsUrl(path) {
    if (/^wss?:\/\//.test(path)) return path;
    return (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + path;
  }

  /* ---------------------------------------------------------------- the socket */
  // One websocket that reconnects by itself: 0.5 s, doubling up to 10 s, reset by a `ready`.
  // options: url, hello() -> frame (or a promise of one), onFrame(frame), onState(state),
  // onClose(code) -> false to stop reconnecting.
  function Connection(options) {
    this.options = options;
    this.ws = null;
    this.ready = false;
    this.delay = MIN_DELAY;
    this.timer = null;
    this.stopped = false;
    this.lastFrame = 0;
    var self = this;
    this.pinger = window.setInterval(function () { self.heartbeat(); }, PING_EVERY);
    window.addEventListener("online", function () { self.now(); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") self.now();
    });
  }

  Connection.prototype.state = function (value) {
    if (this.options.onState) this.options.onState(value);
  };

  Connection.prototype.connect = function () {
    var self = this;
    window.clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped || this.ws) return;
    var ws;
    try {
      ws = new WebSocket(this.options.url);
    } catch (err) {
      this.schedule();
      return;
    }
    this.ws = ws;
    this.ready = false;
    this.lastFrame = Date.now();
    this.state(this.everReady ? "reconnecting" : "connecting");
    ws.onopen = function () {
      Promise.resolve(self.options.hello()).then(function (frame) {
        if (self.ws === ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
      }, function () {
        self.drop(ws);
      });
    };
    ws.onmessage = function (event) {
      if (self.ws !== ws) return;
      self.lastFrame = Date.now();
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (!frame || typeof frame.type !== "string") return;
      if (frame.type === "pong") return;
      if (frame.type === "ready") {
        self.ready = true;
        self.everReady = true;
        self.delay = MIN_DELAY;
        self.state("online");
      }
      try {
        self.options.onFrame(frame);
      } catch (err) {
        if (window.console) window.console.error(err);
      }
    };
    ws.onclose = function (event) {
      if (self.ws !== ws) return;
      self.closed(event.code);
    };
  };

  Connection.prototype.closed = function (code) {
    this.ws = null;
    this.ready = false;
    var again = this.options.onClose ? this.options.onClose(code) : true;
    if (again === false || this.stopped) {
      this.state("stopped");
      return;
    }
    this.state("reconnecting");
    if (code === 4429) this.delay = MAX_DELAY;
    this.schedule();
  };

  // Forget a socket that went silent (half-open behind a proxy) and reconnect.
  Connection.prototype.drop = function (ws) {
    if (this.ws !== ws) return;
    try {
      ws.close();
    } catch (err) {
      /* already closed */
    }
    this.closed(1006);
  };

  Connection.prototype.schedule = function () {
    var self = this;
    if (this.timer || this.stopped) return;
    var wait = this.delay;
    this.delay = Math.min(this.delay * 2, MAX_DELAY);
    this.timer = window.setTimeout(function () {
      self.timer = null;
      self.connect();
    }, wait);
  };

  // The network came back or the tab became visible: try at once instead of waiting.
  Connection.prototype.now = function () {
    if (this.ws || this.stopped) return;
    this.delay = MIN_DELAY;
    this.connect();
  };

  Connection.prototype.heartbeat = function () {
    if (!this.ws || !this.ready) return;
    if (Date.now() - this.lastFrame > SILENCE_LIMIT) {
      this.drop(this.ws);
      return;
    }
    this.send({ type: "ping" });
  };

  Connection.prototype.send = function (frame) {
    if (!this.ws || !this.ready || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  };

  Connection.prototype.reconnect = function () {
    if (this.ws) this.drop(this.ws);
    else this.now();
  };

  Connection.prototype.stop = function () {
    this.stopped = true;
    window.clearTimeout(this.timer);
    window.clearInterval(this.pinger);
    if (this.ws) {
      try {
        this.ws.close(1000);
      } catch (err) {
        /* already closed */
      }
    }
    this.ws = null;
  };

  /* ---------------------------------------------------------------- the outbox */
  // Messages sent but not acknowledged, kept across reloads; resent after a reconnect.
  // The server stores a client_id once, so resending is always safe.
  function Outbox(key) {
    this.key = key;
  }
  Outbox.prototype.all = function () {
    var items = store.get(this.key, []);
    return Array.isArray(items) ? items : [];
  };
  Outbox.prototype.save = function (items) {
    if (items.length) store.set(this.key, items);
    else store.remove(this.key);
  };
  Outbox.prototype.add = function (item) {
    var items = this.all().filter(function (i) { return i.client_id !== item.client_id; });
    items.push(item);
    this.save(items);
  };
  Outbox.prototype.get = function (id) {
    return this.all().filter(function (i) { return i.client_id === id; })[0] || null;
  };
  Outbox.prototype.remove = function (id) {
    var items = this.all();
    var left = items.filter(function (i) { return i.client_id !== id; });
    if (left.length !== items.length) this.save(left);
  };
  Outbox.prototype.update = function (id, changes) {
    this.save(this.all().map(function (i) {
      if (i.client_id !== id) return i;
      for (var k in changes) if (Object.prototype.hasOwnProperty.call(changes, k)) i[k] = changes[k];
      return i;
    }));
  };
  Outbox.prototype.forConversation = function (conversationId) {
    return this.all().filter(function (i) { return i.conversation_id === conversationId; });
  };

  /* ---------------------------------------------------------------- a message list */
  // An <ol> of messages ordered by id; unsent ones (no id yet) stay at the end in the order
  // they were written. options: render(message, node) fills a fresh <li>; lang.
  function MessageList(list, options) {
    this.list = list;
    this.options = options;
    this.maxId = 0;
  }

  MessageList.prototype.clear = function () {
    while (this.list.firstChild) this.list.removeChild(this.list.firstChild);
    this.maxId = 0;
  };

  MessageList.prototype.byId = function (id) {
    return this.list.querySelector('li[data-id="' + Number(id) + '"]');
  };

  MessageList.prototype.byClientId = function (clientIdValue) {
    var items = this.list.querySelectorAll("li[data-client-id]");
    for (var i = 0; i < items.length; i++) {
      if (items[i].getAttribute("data-client-id") === clientIdValue) return items[i];
    }
    return null;
  };

  MessageList.prototype.nearBottom = function () {
    var box = this.options.scroller || this.list;
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  };

  MessageList.prototype.scrollDown = function () {
    var box = this.options.scroller || this.list;
    box.scrollTop = box.scrollHeight;
  };

  // A stored message: placed by id; replaces its pending copy (same client_id). Returns the
  // <li>, and whether it is new to this list.
  MessageList.prototype.put = function (message) {
    var id = Number(message.id);
    var existing = this.byId(id);
    if (existing) return { node: existing, added: false };
    var stick = this.nearBottom();
    var pending = message.client_id ? this.byClientId(message.client_id) : null;
    var node = el("li");
    this.options.render(message, node);
    node.setAttribute("data-id", String(id));
    if (message.client_id) node.setAttribute("data-client-id", message.client_id);
    if (pending) this.list.removeChild(pending);
    var before = null;
    var items = this.list.children;
    for (var i = 0; i < items.length; i++) {
      var other = items[i].getAttribute("data-id");
      if (other === null || Number(other) > id) {
        before = items[i];
        break;
      }
    }
    this.list.insertBefore(node, before);
    if (id > this.maxId) this.maxId = id;
    if (stick || pending) this.scrollDown();
    return { node: node, added: !pending };
  };

  // A message written here and not stored yet.
  MessageList.prototype.putPending = function (message) {
    var node = this.byClientId(message.client_id);
    if (node && node.getAttribute("data-id") !== null) return node;
    var fresh = el("li");
    this.options.render(message, fresh);
    fresh.setAttribute("data-client-id", message.client_id);
    fresh.classList.add("is-pending");
    if (node) this.list.replaceChild(fresh, node);
    else this.list.appendChild(fresh);
    this.scrollDown();
    return fresh;
  };

  /* ---------------------------------------------------------------- typing */
  // Sends typing true at most every 3 s while keys are pressed, and false after 4 s of quiet.
  function TypingSender(send) {
    this.send = send;
    this.active = false;
    this.lastSent = 0;
    this.timer = null;
  }
  TypingSender.prototype.input = function (hasText) {
    var self = this;
    window.clearTimeout(this.timer);
    if (!hasText) {
      this.stop();
      return;
    }
    var now = Date.now();
    if (!this.active || now - this.lastSent > 3000) {
      if (this.send(true)) {
        this.active = true;
        this.lastSent = now;
      }
    }
    this.timer = window.setTimeout(function () { self.stop(); }, 4000);
  };
  TypingSender.prototype.stop = function () {
    window.clearTimeout(this.timer);
    if (this.active) this.send(false);
    this.active = false;
  };

  // Shows "X is typing…" and hides it again if no update comes within 8 s.
  function TypingShower(node) {
    this.node = node;
    this.timer = null;
  }
  TypingShower.prototype.show = function (text) {
    var self = this;
    window.clearTimeout(this.timer);
    this.node.textContent = text;
    this.node.hidden = false;
    this.timer = window.setTimeout(function () { self.hide(); }, 8000);
  };
  TypingShower.prototype.hide = function () {
    window.clearTimeout(this.timer);
    this.node.hidden = true;
    this.node.textContent = "";
  };

  /* ---------------------------------------------------------------- attachments */
  function fileList(files, lang) {
    var ul = el("ul", "chat-files");
    files.forEach(function (file) {
      var li = el("li");
      var url = safeUrl(file.url);
      var name = file.filename || file.name || "";
      if (url) {
        var link = el("a", "", name);
        link.href = url;
        link.setAttribute("download", "");
        link.rel = "noopener";
        li.appendChild(link);
      } else {
        li.appendChild(el("span", "", name));
      }
      if (file.size !== undefined) {
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("span", "chat-file-size", "(" + formatSize(file.size) + ")"));
      }
      ul.appendChild(li);
    });
    return ul;
  }

  // Files picked for the next message: each is uploaded at once and shown as a chip with a
  // remove button. options: url, t, max, auth() -> promise of extra headers, reauth() (after a
  // 401, once), focus (the element to focus after a removal).
  function Uploads(listNode, options) {
    this.node = listNode;
    this.options = options;
    this.items = [];
  }

  Uploads.prototype.busy = function () {
    return this.items.some(function (u) { return u.busy; });
  };

  Uploads.prototype.ready = function () {
    return this.items.filter(function (u) { return u.upload; }).map(function (u) {
      return { upload: u.upload, filename: u.filename, size: u.size };
    });
  };

  Uploads.prototype.clear = function () {
    this.items = [];
    this.render();
  };

  Uploads.prototype.add = function (files) {
    var self = this;
    var max = this.options.max || 5;
    Array.prototype.slice.call(files || []).forEach(function (file) {
      if (self.items.length >= max) return;
      var entry = { filename: file.name, size: file.size, busy: true, upload: "", error: "" };
      self.items.push(entry);
      self.send(entry, file, false);
    });
    this.render();
  };

  Uploads.prototype.send = function (entry, file, retried) {
    var self = this;
    var t = this.options.t;
    Promise.resolve(this.options.auth ? this.options.auth() : {}).then(function (headers) {
      var body = new FormData();
      body.append("file", file, file.name);
      headers = headers || {};
      headers.Accept = "application/json";
      return fetch(self.options.url, {
        method: "POST", credentials: "same-origin", headers: headers, body: body
      });
    }).then(function (response) {
      if (response.status === 401 && !retried && self.options.reauth) {
        self.options.reauth();
        self.send(entry, file, true);
        return null;
      }
      return response.json().catch(function () { return {}; }).then(function (data) {
        entry.busy = false;
        if (response.ok && data.upload) {
          entry.upload = data.upload;
          entry.filename = data.filename || entry.filename;
          if (data.size !== undefined) entry.size = data.size;
        } else if (response.status === 413) {
          entry.error = t("file_too_large");
        } else if (response.status === 415) {
          entry.error = t("file_type_refused");
        } else {
          entry.error = t("upload_failed");
        }
        self.render();
      });
    }).catch(function () {
      entry.busy = false;
      entry.error = t("upload_failed");
      self.render();
    });
  };

  Uploads.prototype.render = function () {
    var self = this;
    var t = this.options.t;
    while (this.node.firstChild) this.node.removeChild(this.node.firstChild);
    this.items.forEach(function (u) {
      var li = el("li", "chat-upload" + (u.error ? " is-failed" : ""));
      li.appendChild(el("span", "chat-upload-name", u.busy ? t("uploading", { name: u.filename }) : u.filename));
      if (u.error) li.appendChild(el("span", "error", u.error));
      var remove = el("button", "link-button", "\u00d7");
      remove.type = "button";
      remove.setAttribute("aria-label", t("remove_file", { name: u.filename }));
      remove.addEventListener("click", function () {
        self.items = self.items.filter(function (x) { return x !== u; });
        self.render();
        if (self.options.focus) self.options.focus.focus();
      });
      li.appendChild(remove);
      self.node.appendChild(li);
    });
    this.node.hidden = this.items.length === 0;
  };

  // Enter sends, Shift+Enter is a new line; not while an IME is composing (Chinese, Japanese).
  function enterSends(textarea, submit) {
    textarea.addEventListener("keydown", function (event) {
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) {
        return;
      }
      if (event.defaultPrevented) return;
      event.preventDefault();
      submit();
    });
  }

  // The textarea grows with its text, up to a few lines.
  function autoGrow(textarea) {
    function fit() {
      textarea.style.height = "auto";
      textarea.style.height = Math.min(textarea.scrollHeight + 2, 160) + "px";
    }
    textarea.addEventListener("input", fit);
    return fit;
  }

  /* One message: avatar (the other side's), author, time, text, files, and a state line under
     one's own messages. `o`: {mine, name, lang, hideAuthor, label, extraClass}. */
  function renderMessage(node, message, o) {
    var system = message.author_type === "system";
    node.className = "chat-msg " + (system ? "chat-msg-system" : o.mine ? "chat-msg-mine" : "chat-msg-theirs") +
      (o.extraClass || "");
    if (!o.mine && !system) node.appendChild(avatar(o.name));
    var bubble = el("div", "chat-bubble");
    var meta = el("p", "chat-meta");
    meta.appendChild(el("span", "chat-author" + (o.hideAuthor ? " visually-hidden" : ""), o.name));
    if (o.label) meta.appendChild(el("span", "chat-note-label", o.label));
    if (message.created_at) {
      meta.appendChild(document.createTextNode(" "));
      var time = el("time", "chat-time", formatTime(message.created_at, o.lang));
      time.setAttribute("datetime", message.created_at);
      meta.appendChild(time);
    }
    bubble.appendChild(meta);
    if (message.body) bubble.appendChild(el("div", "chat-body", message.body));
    if (message.attachments && message.attachments.length) bubble.appendChild(fileList(message.attachments, o.lang));
    node.appendChild(bubble);
    if (o.mine) node.appendChild(el("p", "chat-msg-state"));
  }

  /* The line under one's own message: "Sending…", "Seen", or "Not sent." with a retry button. */
  function setMessageState(node, text, retryLabel, onRetry) {
    var holder = node && node.querySelector(".chat-msg-state");
    if (!holder) return;
    holder.textContent = text || "";
    if (retryLabel) {
      var retry = el("button", "link-button", retryLabel);
      retry.type = "button";
      retry.addEventListener("click", onRetry);
      holder.appendChild(document.createTextNode(" "));
      holder.appendChild(retry);
    }
  }

  /* "Seen" under the newest of one's own messages (`selector`) that the other side has read. */
  function markSeen(logNode, selector, readId, seenText) {
    var old = logNode.querySelectorAll(".chat-msg-mine.is-seen");
    for (var i = 0; i < old.length; i++) {
      old[i].classList.remove("is-seen");
      setMessageState(old[i], "");
    }
    if (!readId) return;
    var mine = logNode.querySelectorAll(selector);
    for (var j = mine.length - 1; j >= 0; j--) {
      if (Number(mine[j].getAttribute("data-id")) <= readId) {
        mine[j].classList.add("is-seen");
        setMessageState(mine[j], seenText);
        return;
      }
    }
  }

  /* Read receipts: when the newest message is on screen, tell the server once (throttled).
     `current()` is the open conversation id (or 0), `ready()` whether it is caught up;
     `state.lastReadSent` is the highest id told so far (the page resets it per conversation). */
  function ReadReceipts(options) {
    var self = this;
    this.options = options;
    this.timer = null;
    var schedule = function () { self.schedule(); };
    document.addEventListener("visibilitychange", schedule);
    options.scroller.addEventListener("scroll", schedule, { passive: true });
    window.addEventListener("focus", schedule);
  }
  ReadReceipts.prototype.schedule = function () {
    var self = this;
    var o = this.options;
    if (this.timer) return;
    this.timer = window.setTimeout(function () {
      self.timer = null;
      var conversation = o.current();
      if (document.visibilityState !== "visible" || !conversation || !o.ready()) return;
      if (!o.messages.nearBottom()) return;
      var last = o.messages.maxId;
      if (last > o.state.lastReadSent && o.send({ type: "read", conversation_id: conversation, id: last })) {
        o.state.lastReadSent = last;
      }
    }, 400);
  };

  window.PortalChat = {
    ReadReceipts: ReadReceipts,
    renderMessage: renderMessage,
    setMessageState: setMessageState,
    markSeen: markSeen,
    store: store,
    readConfig: readConfig,
    translator: translator,
    el: el,
    clientId: clientId,
    initials: initials,
    avatar: avatar,
    formatTime: formatTime,
    formatSize: formatSize,
    safeUrl: safeUrl,
    wsUrl: wsUrl,
    Connection: Connection,
    Outbox: Outbox,
    MessageList: MessageList,
    TypingSender: TypingSender,
    TypingShower: TypingShower,
    fileList: fileList,
    Uploads: Uploads,
    enterSends: enterSends,
    autoGrow: autoGrow
  };
})();
