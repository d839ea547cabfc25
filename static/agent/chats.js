/* The agent console's live chats (/agent/chats): inbox tabs, one open conversation, replies,
   notes, canned responses, presence. Frames: see portal/messenger/protocol.py.
   Message data is shown with textContent only. */
(function () {
  "use strict";

  var C = window.PortalChat;
  var root = document.getElementById("chats");
  var cfg = C && root ? C.readConfig("chats-config") : null;
  if (!cfg) return;
  var t = C.translator(cfg.strings);
  var lang = cfg.lang || document.documentElement.lang || "";
  var canned = Array.isArray(cfg.canned) ? cfg.canned : [];
  var agents = Array.isArray(cfg.agents) ? cfg.agents : [];
  var outbox = new C.Outbox("portal.agent.outbox");
  var KEY_PRESENCE = "portal.agent.presence";

  function $(id) {
    return document.getElementById(id);
  }
  var listNode = $("chats-list");
  var emptyNode = $("chats-empty");
  var placeholder = $("chats-placeholder");
  var detail = $("chats-detail");
  var logNode = $("chats-log");
  var scroller = $("chats-scroller");
  var input = $("chats-input");
  var composer = $("chats-composer");
  var noteButton = $("chats-note");
  var suggestions = $("chats-suggestions");
  var cannedSelect = $("chats-canned");
  var assignSelect = $("chats-assign");
  var acceptButton = $("chats-accept");
  var closeButton = $("chats-close");
  var errorNode = $("chats-error");
  var presenceSelect = $("chats-presence");
  var presenceDot = $("chats-presence-dot");
  var onlineNode = $("chats-online");
  var connectionNode = $("chats-connection");
  var tabs = Array.prototype.slice.call(document.querySelectorAll("[data-tab]"));
  var baseTitle = document.title;

  var me = { id: Number(root.getAttribute("data-agent-id")) || 0, name: root.getAttribute("data-agent-name") || "" };
  var state = {
    tab: "waiting",
    conversations: {},
    pages: {}, // conversation id -> the page its visitor is on, as the widget said
    open: null, // the conversation id shown in the pane
    caughtUp: false,
    visitorReadId: 0,
    lastReadSent: 0,
    presence: {},
    myStatus: C.store.get(KEY_PRESENCE, "online") === "away" ? "away" : "online"
  };
  presenceSelect.value = state.myStatus;

  /* ---------------------------------------------------------------- helpers */
  function conversationTitle(c) {
    return c.visitor_name || c.visitor_email || t("conversation_number", { id: c.id });
  }

  /* A visitor's email is whatever was typed into the chat: it counts as proved only when the
     server says so (the signed-in customer's own address, verified by a magic link). */
  function emailVerified(c) {
    return c.visitor_email_verified === true;
  }

  function unverifiedMark() {
    var mark = C.el("span", "email-unverified");
    mark.title = t("unverified_title");
    var short = C.el("span", "", t("unverified"));
    short.setAttribute("aria-hidden", "true");
    mark.appendChild(short);
    mark.appendChild(C.el("span", "visually-hidden", t("unverified_title")));
    return mark;
  }

  function mailtoHref(address) {
    // Encoded, so an address can never add a header (?cc=...) to the agent's mail.
    return "mailto:" + encodeURIComponent(address).replace(/%40/g, "@");
  }

  function statusLabel(status) {
    return t("status_" + status);
  }

  function inTab(c, tab) {
    if (tab === "waiting") return c.status === "waiting";
    if (tab === "mine") return c.assignee_agent_id === me.id && c.status !== "closed";
    return true;
  }

  function showError(text) {
    errorNode.textContent = text || "";
    errorNode.hidden = !text;
  }

  /* ---------------------------------------------------------------- the inbox */
  function renderList() {
    var all = Object.keys(state.conversations).map(function (k) { return state.conversations[k]; });
    var counts = { waiting: 0, mine: 0, all: all.length };
    all.forEach(function (c) {
      if (inTab(c, "waiting")) counts.waiting++;
      if (inTab(c, "mine")) counts.mine++;
    });
    Object.keys(counts).forEach(function (k) {
      var node = document.querySelector('[data-count="' + k + '"]');
      if (node) node.textContent = String(counts[k]);
    });
    document.title = counts.waiting ? "(" + counts.waiting + ") " + baseTitle : baseTitle;

    var shown = all.filter(function (c) { return inTab(c, state.tab); });
    if (state.tab === "waiting") {
      shown.sort(function (a, b) { return String(a.created_at).localeCompare(String(b.created_at)); });
    } else {
      shown.sort(function (a, b) { return String(b.updated_at).localeCompare(String(a.updated_at)); });
    }
    var focused = document.activeElement && listNode.contains(document.activeElement)
      ? document.activeElement.getAttribute("data-id") : null;
    while (listNode.firstChild) listNode.removeChild(listNode.firstChild);
    shown.forEach(function (c) {
      var li = C.el("li");
      var button = C.el("button", "chats-item");
      button.type = "button";
      button.setAttribute("data-id", String(c.id));
      var unread = c.last_message_id > (c.agent_read_id || 0);
      if (unread) button.classList.add("is-unread");
      if (c.id === state.open) button.setAttribute("aria-current", "true");
      var name = conversationTitle(c);
      button.appendChild(C.avatar(c.visitor_name || c.visitor_email || "?"));
      var main = C.el("span", "chats-item-main");
      var nameNode = C.el("span", "chats-item-name", name);
      if (!c.visitor_name && c.visitor_email && !emailVerified(c)) {
        nameNode.appendChild(document.createTextNode(" "));
        nameNode.appendChild(unverifiedMark());
      }
      main.appendChild(nameNode);
      main.appendChild(C.el("span", "chats-item-preview", c.last_message_preview || c.subject || ""));
      if (unread) main.appendChild(C.el("span", "visually-hidden", t("unread")));
      button.appendChild(main);
      var side = C.el("span", "chats-item-side");
      var time = C.el("time", "", C.formatTime(c.updated_at, lang));
      time.setAttribute("datetime", c.updated_at || "");
      side.appendChild(time);
      side.appendChild(C.el("span", "chat-status chat-status-" + String(c.status).replace(/[^a-z]/g, ""),
        statusLabel(c.status)));
      button.appendChild(side);
      button.addEventListener("click", function () { openConversation(c.id); });
      li.appendChild(button);
      listNode.appendChild(li);
      if (focused === String(c.id)) button.focus();
    });
    emptyNode.hidden = shown.length > 0;
  }

  function selectTab(tab, focus) {
    state.tab = tab;
    tabs.forEach(function (button) {
      var selected = button.getAttribute("data-tab") === tab;
      button.setAttribute("aria-selected", selected ? "true" : "false");
      button.tabIndex = selected ? 0 : -1;
      if (selected) {
        $("chats-list-panel").setAttribute("aria-labelledby", button.id);
        if (focus) button.focus();
      }
    });
    renderList();
  }

  tabs.forEach(function (button, index) {
    button.addEventListener("click", function () { selectTab(button.getAttribute("data-tab"), false); });
    button.addEventListener("keydown", function (event) {
      var next = null;
      if (event.key === "ArrowRight") next = tabs[(index + 1) % tabs.length];
      else if (event.key === "ArrowLeft") next = tabs[(index + tabs.length - 1) % tabs.length];
      else if (event.key === "Home") next = tabs[0];
      else if (event.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        event.preventDefault();
        selectTab(next.getAttribute("data-tab"), true);
      }
    });
  });

  function upsert(c) {
    if (!c || !(c.id > 0)) return;
    var old = state.conversations[c.id];
    // A read receipt seen here may be newer than the inbox copy.
    if (old && old.agent_read_id > (c.agent_read_id || 0)) c.agent_read_id = old.agent_read_id;
    state.conversations[c.id] = c;
    if (c.id === state.open) renderDetail();
  }

  /* ---------------------------------------------------------------- the open conversation */
  function render(message, node) {
    var agent = message.author_type === "agent";
    var conversation = state.conversations[message.conversation_id] || {};
    C.renderMessage(node, message, {
      mine: agent,
      name: message.author_name || (agent ? t("agent") : conversation.visitor_name || t("visitor")),
      label: message.internal ? t("note") : "",
      extraClass: message.internal ? " chat-msg-internal" : "",
      lang: lang
    });
  }

  var messages = new C.MessageList(logNode, { render: render, scroller: scroller, lang: lang });
  var typing = new C.TypingShower($("chats-typing"));

  function setMessageState(node, text, retryId) {
    C.setMessageState(node, text, retryId && t("retry"), function () { resend(retryId); });
  }

  function renderPending(item) {
    var node = messages.putPending({
      client_id: item.client_id,
      conversation_id: item.conversation_id,
      author_type: "agent",
      author_name: me.name,
      internal: item.kind === "note",
      body: item.body,
      created_at: item.created_at,
      attachments: (item.attachments || []).map(function (a) { return { filename: a.filename, size: a.size }; })
    });
    if (item.failed) {
      node.classList.add("is-failed");
      setMessageState(node, t("not_sent"), item.client_id);
    } else {
      setMessageState(node, t("sending"));
    }
  }

  // "Seen" under the latest public agent message the visitor has read.
  function showSeen() {
    C.markSeen(logNode, ".chat-msg-mine[data-id]:not(.chat-msg-internal)", state.visitorReadId, t("seen"));
  }

  function agentName(id) {
    for (var i = 0; i < agents.length; i++) if (agents[i].id === id) return agents[i].name;
    return "";
  }

  function renderAssignOptions() {
    var chosen = assignSelect.value;
    while (assignSelect.options.length > 1) assignSelect.remove(1);
    agents.forEach(function (a) {
      var status = state.presence[String(a.id)];
      var label = a.id === me.id ? t("me", { name: a.name }) : a.name;
      if (status) label += " (" + t(status) + ")";
      var option = C.el("option", "", label);
      option.value = String(a.id);
      assignSelect.appendChild(option);
    });
    assignSelect.value = chosen;
  }

  function renderDetail() {
    var c = state.open ? state.conversations[state.open] : null;
    placeholder.hidden = !!state.open;
    detail.hidden = !state.open;
    if (!c) return;
    $("chats-title").textContent = conversationTitle(c);
    var email = $("chats-email");
    while (email.firstChild) email.removeChild(email.firstChild);
    if (c.visitor_email) {
      var mail = C.el("a", "", c.visitor_email);
      mail.href = mailtoHref(c.visitor_email);
      email.appendChild(mail);
      if (!emailVerified(c)) {
        email.appendChild(document.createTextNode(" "));
        email.appendChild(unverifiedMark());
      }
    } else {
      email.appendChild(C.el("span", "muted", "\u2014"));
    }
    $("chats-status").textContent = statusLabel(c.status);
    $("chats-assignee").textContent = c.assignee_agent_id
      ? c.assignee_name || agentName(c.assignee_agent_id) : t("unassigned");
    var ticketFact = $("chats-ticket-fact");
    ticketFact.hidden = !c.ticket_id;
    if (c.ticket_id) {
      var link = $("chats-ticket");
      link.href = "/agent/tickets/" + Number(c.ticket_id);
      link.textContent = t("open_ticket");
    }
    acceptButton.hidden = c.status === "closed" || c.assignee_agent_id === me.id;
    closeButton.hidden = c.status === "closed";
    if (document.activeElement !== assignSelect) {
      assignSelect.value = c.assignee_agent_id ? String(c.assignee_agent_id) : "";
    }
    if (c.visitor_read_id > state.visitorReadId) {
      state.visitorReadId = c.visitor_read_id;
      showSeen();
    }
  }

  /* The page of the company's site the visitor is on (the widget reports it). The address is
     the visitor's to claim: shown as text, linked only when it is http(s). */
  function showPage() {
    var node = $("chats-page");
    var page = state.pages[state.open];
    node.textContent = "";
    node.hidden = !page;
    if (!page) return;
    var link = C.el(/^https?:\/\//i.test(page.url) ? "a" : "span", "", page.title || page.url);
    if (link.tagName === "A") {
      link.href = page.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
    }
    node.append(t("on_page") + " ", link);
  }

  function openConversation(id) {
    if (id === state.open) {
      input.focus();
      return;
    }
    if (state.open) conn.send({ type: "unwatch", conversation_id: state.open });
    typingOut.stop();
    state.open = id;
    state.caughtUp = false;
    state.visitorReadId = 0;
    state.lastReadSent = 0;
    messages.clear();
    typing.hide();
    showError("");
    logNode.setAttribute("aria-busy", "true");
    conn.send({ type: "watch", conversation_id: id, last_id: 0 });
    showPage();
    renderDetail();
    renderList();
    input.focus();
  }

  /* ---------------------------------------------------------------- sending */
  function transmit(item) {
    if (!conn.ready) return false;
    if (item.conversation_id === state.open && !state.caughtUp) return false; // after caught_up
    var frame = {
      type: item.kind === "note" ? "note" : "message",
      conversation_id: item.conversation_id,
      client_id: item.client_id,
      body: item.body
    };
    if (item.attachments && item.attachments.length) {
      frame.attachments = item.attachments.map(function (a) { return a.upload; });
    }
    return conn.send(frame);
  }

  var failed = {};

  function resend(id) {
    var item = outbox.get(id) || failed[id];
    if (!item) return;
    delete item.failed;
    delete failed[id];
    outbox.add(item);
    renderPending(item);
    transmit(item);
  }

  function submit(kind) {
    if (!state.open) return;
    var body = input.value.trim();
    if (uploads.busy()) {
      showError(t("wait_uploads"));
      return;
    }
    var files = uploads.ready();
    if (!body && !files.length) {
      input.focus();
      return;
    }
    var item = {
      client_id: C.clientId(),
      kind: kind,
      conversation_id: state.open,
      body: body,
      attachments: files,
      created_at: new Date().toISOString()
    };
    outbox.add(item);
    renderPending(item);
    input.value = "";
    uploads.clear();
    closeSuggestions();
    typingOut.stop();
    showError("");
    transmit(item);
    input.focus();
  }

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    submit("message");
  });
  noteButton.addEventListener("click", function () { submit("note"); });

  // After a catch-up: drop what is stored already, resend the rest with the same client ids.
  function flushOpen() {
    outbox.forConversation(state.open).forEach(function (item) {
      var stored = messages.byClientId(item.client_id);
      if (stored && stored.getAttribute("data-id") !== null) {
        outbox.remove(item.client_id);
        return;
      }
      renderPending(item);
      transmit(item);
    });
  }

  // Other conversations' unsent messages: the server stores each client id once, so just resend.
  function flushOthers() {
    outbox.all().forEach(function (item) {
      if (item.conversation_id !== state.open) transmit(item);
    });
  }

  /* ---------------------------------------------------------------- canned responses */
  function fill(body) {
    var c = state.open ? state.conversations[state.open] || {} : {};
    var values = {
      "customer.name": c.visitor_name || "",
      "customer.email": c.visitor_email || "",
      "agent.name": me.name || ""
    };
    var blank = false;
    var text = String(body).replace(/\{\{\s*(customer\.name|customer\.email|agent\.name)\s*\}\}/g, function (all, key) {
      if (!values[key]) blank = true;
      return values[key];
    });
    // "Hi {{customer.name}}, ..." without a name reads "Hi, ...", not "Hi , ...".
    if (blank) text = text.replace(/[ \t]+([,.!?;:])/g, "$1").replace(/[ \t]{2,}/g, " ");
    return text;
  }

  function insertAt(start, end, text) {
    var value = input.value;
    input.value = value.slice(0, start) + text + value.slice(end);
    var caret = start + text.length;
    input.setSelectionRange(caret, caret);
    input.focus();
    input.dispatchEvent(new Event("input"));
  }

  canned.forEach(function (item, index) {
    var option = C.el("option", "", "/" + item.shortcut);
    option.value = String(index);
    option.title = item.body;
    cannedSelect.appendChild(option);
  });
  cannedSelect.hidden = canned.length === 0;
  cannedSelect.addEventListener("change", function () {
    var item = canned[Number(cannedSelect.value)];
    cannedSelect.value = "";
    if (!item) return;
    insertAt(input.selectionStart, input.selectionEnd, fill(item.body));
  });

  var suggest = { items: [], active: 0, start: 0 };

  function closeSuggestions() {
    suggest.items = [];
    suggestions.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function renderSuggestions() {
    while (suggestions.firstChild) suggestions.removeChild(suggestions.firstChild);
    suggest.items.forEach(function (item, index) {
      var li = C.el("li");
      li.id = "chats-suggestion-" + index;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", index === suggest.active ? "true" : "false");
      li.appendChild(C.el("span", "chats-suggestion-key", "/" + item.shortcut));
      li.appendChild(C.el("span", "chats-suggestion-body", item.body));
      li.addEventListener("mousedown", function (event) {
        event.preventDefault(); // keep the focus in the textarea
        suggest.active = index;
        pickSuggestion();
      });
      suggestions.appendChild(li);
    });
    suggestions.hidden = suggest.items.length === 0;
    input.setAttribute("aria-expanded", suggest.items.length ? "true" : "false");
    if (suggest.items.length) input.setAttribute("aria-activedescendant", "chats-suggestion-" + suggest.active);
    else input.removeAttribute("aria-activedescendant");
  }

  function updateSuggestions() {
    var caret = input.selectionStart;
    var before = input.value.slice(0, caret);
    var match = /(^|\s)\/([\w.-]*)$/.exec(before);
    if (!match || !canned.length) {
      closeSuggestions();
      return;
    }
    var query = match[2].toLowerCase();
    suggest.start = caret - match[2].length - 1;
    suggest.items = canned.filter(function (item) {
      return String(item.shortcut).toLowerCase().indexOf(query) === 0;
    }).slice(0, 8);
    suggest.active = 0;
    renderSuggestions();
  }

  function pickSuggestion() {
    var item = suggest.items[suggest.active];
    if (!item) return;
    var start = suggest.start;
    closeSuggestions();
    insertAt(start, input.selectionStart, fill(item.body));
  }

  // Registered before enterSends: with the list open, Enter picks instead of sending.
  input.addEventListener("keydown", function (event) {
    if (suggestions.hidden || !suggest.items.length) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      var n = suggest.items.length;
      suggest.active = (suggest.active + (event.key === "ArrowDown" ? 1 : n - 1)) % n;
      renderSuggestions();
    } else if ((event.key === "Enter" && !event.isComposing) || event.key === "Tab") {
      event.preventDefault();
      pickSuggestion();
    } else if (event.key === "Escape") {
      event.preventDefault();
      closeSuggestions();
    }
  });
  C.enterSends(input, function () { submit("message"); });
  input.addEventListener("input", function () {
    updateSuggestions();
    typingOut.input(input.value.trim().length > 0);
  });
  input.addEventListener("blur", function () {
    closeSuggestions();
    typingOut.stop();
  });

  var typingOut = new C.TypingSender(function (value) {
    if (!state.open || !state.caughtUp) return false;
    return conn.send({ type: "typing", conversation_id: state.open, typing: value });
  });

  /* ---------------------------------------------------------------- attachments */
  var fileInput = $("chats-file");
  var uploads = new C.Uploads($("chats-uploads"), { url: cfg.upload_url, t: t, max: 5, focus: input });
  fileInput.addEventListener("change", function () {
    uploads.add(fileInput.files);
    fileInput.value = "";
  });
  if (!cfg.upload_url) fileInput.parentNode.hidden = true;

  /* ---------------------------------------------------------------- actions */
  acceptButton.addEventListener("click", function () {
    if (state.open) conn.send({ type: "accept", conversation_id: state.open });
  });
  closeButton.addEventListener("click", function () {
    if (state.open) conn.send({ type: "close", conversation_id: state.open });
  });
  $("chats-assign-form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (!state.open) return;
    var value = assignSelect.value;
    conn.send({ type: "assign", conversation_id: state.open, agent_id: value ? Number(value) : null });
  });
  presenceSelect.addEventListener("change", function () {
    state.myStatus = presenceSelect.value === "away" ? "away" : "online";
    C.store.set(KEY_PRESENCE, state.myStatus);
    conn.send({ type: "presence", status: state.myStatus });
    renderPresence();
  });

  function renderPresence() {
    var mine = state.presence[String(me.id)] || state.myStatus;
    presenceDot.className = "chats-presence-dot is-" + mine;
    var online = Object.keys(state.presence).filter(function (k) { return state.presence[k] === "online"; }).length;
    onlineNode.textContent = t("online_count", { count: online });
    renderAssignOptions();
  }

  /* ---------------------------------------------------------------- read receipts */
  var receipts = new C.ReadReceipts({
    scroller: scroller,
    messages: messages,
    send: function (frame) { return conn.send(frame); },  // conn is made further down
    state: state,
    current: function () { return state.open; },
    ready: function () { return state.caughtUp; }
  });
  function scheduleRead() { receipts.schedule(); }

  /* ---------------------------------------------------------------- frames */
  var handlers = {
    ready: function (frame) {
      if (frame.agent && frame.agent.id) me = { id: frame.agent.id, name: frame.agent.name || me.name };
      var fresh = {};
      (frame.conversations || []).forEach(function (c) { if (c.id > 0) fresh[c.id] = c; });
      // Keep a conversation that is open even if it fell off the server's first page.
      if (state.open && !fresh[state.open] && state.conversations[state.open]) {
        fresh[state.open] = state.conversations[state.open];
      }
      state.conversations = fresh;
      if (frame.presence) state.presence = frame.presence;
      if (state.myStatus === "away") conn.send({ type: "presence", status: "away" });
      renderPresence();
      if (state.open) {
        state.caughtUp = false;
        conn.send({ type: "watch", conversation_id: state.open, last_id: messages.maxId });
      }
      flushOthers();
      renderList();
      renderDetail();
    },

    inbox: function (frame) {
      (frame.conversations || []).forEach(upsert);
      renderList();
    },

    conversation: function (frame) {
      upsert(frame.conversation);
      renderList();
    },

    message: function (frame) {
      var message = frame.message;
      if (!message) return;
      var c = state.conversations[message.conversation_id];
      if (c && !message.internal && message.id > (c.last_message_id || 0)) {
        c.last_message_id = message.id;
        c.last_message_preview = message.body || c.last_message_preview;
      }
      if (message.conversation_id !== state.open) return;
      if (message.client_id) {
        outbox.remove(message.client_id);
        delete failed[message.client_id];
      }
      var result = messages.put(message);
      if (message.author_type === "visitor") typing.hide();
      if (result.added) scheduleRead();
      showSeen();
    },

    ack: function (frame) {
      outbox.remove(frame.client_id);
      var node = messages.byClientId(frame.client_id);
      if (node && node.getAttribute("data-id") === null) setMessageState(node, "");
    },

    caught_up: function (frame) {
      if (frame.conversation_id !== state.open) return;
      state.caughtUp = true;
      logNode.removeAttribute("aria-busy");
      flushOpen();
      showSeen();
      messages.scrollDown();
      scheduleRead();
    },

    page: function (frame) {
      state.pages[frame.conversation_id] = { url: frame.url, title: frame.title };
      if (frame.conversation_id === state.open) showPage();
    },

    typing: function (frame) {
      if (frame.conversation_id !== state.open || frame.author_type === "agent") return;
      var c = state.conversations[frame.conversation_id] || {};
      if (frame.typing) typing.show(t("typing", { name: frame.author_name || c.visitor_name || t("visitor") }));
      else typing.hide();
    },

    read: function (frame) {
      var c = state.conversations[frame.conversation_id];
      if (frame.reader === "agent") {
        if (c && frame.id > (c.agent_read_id || 0)) {
          c.agent_read_id = frame.id;
          renderList();
        }
        return;
      }
      if (c && frame.id > (c.visitor_read_id || 0)) c.visitor_read_id = frame.id;
      if (frame.conversation_id === state.open && frame.id > state.visitorReadId) {
        state.visitorReadId = frame.id;
        showSeen();
      }
    },

    presence: function (frame) {
      state.presence = frame.agents || {};
      var mine = state.presence[String(me.id)];
      if (mine && mine !== presenceSelect.value && document.activeElement !== presenceSelect) {
        presenceSelect.value = mine; // changed in another tab of this agent
        state.myStatus = mine;
        C.store.set(KEY_PRESENCE, mine);
      }
      renderPresence();
    },

    error: function (frame) {
      var item = frame.client_id ? outbox.get(frame.client_id) : null;
      if (item) {
        if (frame.code === "rate_limited" || frame.code === "server_error") {
          window.setTimeout(function () { transmit(item); }, 2000);
          return;
        }
        outbox.remove(item.client_id);
        item.failed = true;
        failed[item.client_id] = item;
        if (item.conversation_id === state.open) renderPending(item);
        return;
      }
      if (frame.code === "not_found" && state.open && !state.caughtUp) {
        delete state.conversations[state.open];
        state.open = null;
        messages.clear();
        renderDetail();
        renderList();
        return;
      }
      showError(frame.code === "rate_limited" ? t("rate_limited") : t("action_failed"));
    }
  };

  /* ---------------------------------------------------------------- the connection */
  var connectionTimer = null;
  function showConnection(value) {
    window.clearTimeout(connectionTimer);
    if (value === "online") {
      connectionNode.hidden = true;
      connectionNode.textContent = "";
      return;
    }
    var text = value === "stopped" ? t("signed_out") : value === "reconnecting" ? t("offline") : t("connecting");
    connectionTimer = window.setTimeout(function () {
      connectionNode.textContent = text;
      connectionNode.hidden = false;
    }, value === "stopped" ? 0 : 1500);
  }

  var unauthorized = 0;
  var conn = new C.Connection({
    url: C.wsUrl(cfg.ws_url),
    hello: function () {
      state.caughtUp = false;
      return { type: "hello" };
    },
    onFrame: function (frame) {
      if (frame.type === "ready") unauthorized = 0;
      var handler = handlers[frame.type];
      if (handler) handler(frame);
    },
    onState: function (value) {
      if (value !== "online") {
        state.caughtUp = false;
        typing.hide();
      }
      showConnection(value);
    },
    onClose: function (code) {
      // The console's session ended (signed out, expired): retrying will not help for long.
      if (code === 4401 && ++unauthorized >= 3) return false;
      if (code === 4403) return false;
      return true;
    }
  });

  renderAssignOptions();
  renderPresence();
  selectTab("waiting", false);
  renderDetail();
  conn.connect();
})();
