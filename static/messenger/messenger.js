/* The visitor's chat (the /messenger page and the widget's iframe).
   Frames: see portal/messenger/protocol.py. Message data is shown with textContent only. */
(function () {
  "use strict";

  var C = window.PortalChat;
  var root = document.getElementById("messenger");
  var cfg = C && root ? C.readConfig("messenger-config") : null;
  if (!cfg) return;
  var t = C.translator(cfg.strings);
  var lang = cfg.lang || document.documentElement.lang || "";
  var prechat = root.getAttribute("data-prechat") || "off";

  var KEY_VISITOR = "portal.visitor";
  var KEY_CONVERSATION = "portal.conversation";
  var outbox = new C.Outbox("portal.outbox");

  function $(id) {
    return document.getElementById(id);
  }
  var logNode = $("msgr-log");
  var scroller = $("msgr-scroller");
  var input = $("msgr-input");
  var composer = $("msgr-composer");
  var sendButton = $("msgr-send");
  var fileInput = $("msgr-file");
  var uploadsNode = $("msgr-uploads");
  var prechatForm = $("msgr-prechat");
  var prechatError = $("msgr-prechat-error");
  var noticeNode = $("msgr-notice");
  var emailForm = $("msgr-email-form");
  var emailInput = $("msgr-email");
  var emailHint = $("msgr-email-hint");
  var endedNode = $("msgr-ended");
  var connectionNode = $("msgr-connection");
  var historyButton = $("msgr-history-button");
  var historyNode = $("msgr-history");
  var conversationsNode = $("msgr-conversations");
  var noConversations = $("msgr-no-conversations");
  var transcriptButton = $("msgr-transcript");
  var newButton = $("msgr-new");
  var subtitle = $("msgr-subtitle");
  var titleNode = $("msgr-title");
  var avatarNode = $("msgr-avatar");
  var teamAvatar = avatarNode.cloneNode(true);
  var teamTitle = titleNode.textContent;

  var saved = C.store.get(KEY_VISITOR, null);
  var state = {
    token: saved && typeof saved === "object" ? saved.token || "" : typeof saved === "string" ? saved : "",
    visitorId: saved && typeof saved === "object" ? saved.visitor_id || "" : "",
    tokenChecked: false,
    conversationId: validId(C.store.get(KEY_CONVERSATION, null)),
    conversations: {},
    caughtUp: false,
    agentReadId: 0,
    agentName: "",
    lastReadSent: 0,
    emailMode: "",
    transcriptPending: false
  };

  function validId(value) {
    var n = Number(value);
    return n > 0 && Math.floor(n) === n ? n : null;
  }

  /* ---------------------------------------------------------------- the visitor token */
  var tokenRequest = null;

  function postToken(body) {
    return fetch(cfg.token_url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      if (!response.ok) {
        var error = new Error("token " + response.status);
        error.status = response.status;
        throw error;
      }
      return response.json();
    });
  }

  // The token of this browser: refreshed once per page load (and after a 4401), made when none.
  function token() {
    if (state.token && state.tokenChecked) return Promise.resolve(state.token);
    if (tokenRequest) return tokenRequest;
    var old = state.token;
    tokenRequest = postToken(old ? { token: old } : {})
      .catch(function (error) {
        // A token we may not keep (expired, another tenant's): start afresh as a new visitor.
        if (old && error.status && error.status >= 400 && error.status < 500) return postToken({});
        throw error;
      })
      .then(function (data) {
        if (!data || typeof data.token !== "string") throw new Error("no token");
        if (state.visitorId && data.visitor_id && data.visitor_id !== state.visitorId) {
          forgetConversation(); // another visitor now: the old conversation is not ours
        }
        state.token = data.token;
        state.visitorId = data.visitor_id || state.visitorId;
        state.tokenChecked = true;
        C.store.set(KEY_VISITOR, { token: state.token, visitor_id: state.visitorId });
        return state.token;
      })
      .finally(function () {
        tokenRequest = null;
      });
    return tokenRequest;
  }

  /* ---------------------------------------------------------------- rendering messages */
  function render(message, node) {
    var mine = message.author_type === "visitor";
    C.renderMessage(node, message, {
      mine: mine,
      name: mine ? t("you") : message.author_name || t("agent"),
      hideAuthor: mine,
      lang: lang
    });
  }

  var messages = new C.MessageList(logNode, { render: render, scroller: scroller, lang: lang });

  function setMessageState(node, text, retryId) {
    C.setMessageState(node, text, retryId && t("retry"), function () { resend(retryId); });
  }

  function renderPending(item) {
    var node = messages.putPending({
      client_id: item.client_id,
      author_type: "visitor",
      body: item.body,
      created_at: item.created_at,
      attachments: (item.attachments || []).map(function (a) {
        return { filename: a.filename, size: a.size };
      })
    });
    if (item.failed) {
      node.classList.add("is-failed");
      setMessageState(node, t("not_sent"), item.client_id);
    } else {
      setMessageState(node, t("sending"));
    }
    return node;
  }

  // "Seen" under the visitor's latest message the agent has read.
  function showSeen() {
    C.markSeen(logNode, ".chat-msg-mine[data-id]", state.agentReadId, t("seen"));
  }

  /* ---------------------------------------------------------------- the header */
  function showAgent(name) {
    if (!name || name === state.agentName) return;
    state.agentName = name;
    var fresh = C.avatar(name, "chat-avatar-agent");
    fresh.id = "msgr-avatar";
    avatarNode.parentNode.replaceChild(fresh, avatarNode);
    avatarNode = fresh;
    titleNode.textContent = name;
    updateSubtitle();
  }

  function showTeam() {
    state.agentName = "";
    var fresh = teamAvatar.cloneNode(true);
    avatarNode.parentNode.replaceChild(fresh, avatarNode);
    avatarNode = fresh;
    titleNode.textContent = teamTitle;
    updateSubtitle();
  }

  function current() {
    return state.conversationId ? state.conversations[state.conversationId] || null : null;
  }

  function updateSubtitle() {
    var conversation = current();
    if (state.agentName) subtitle.textContent = teamTitle;
    else if (conversation && conversation.status === "waiting") subtitle.textContent = t("waiting_for_agent");
    else subtitle.textContent = t("intro");
  }

  /* ---------------------------------------------------------------- what is shown */
  function showNotice(text) {
    noticeNode.textContent = text || "";
    noticeNode.hidden = !text;
  }

  function showEmailForm(mode, hint) {
    state.emailMode = mode;
    emailHint.textContent = hint;
    emailForm.hidden = false;
    messages.scrollDown();
  }

  function hideEmailForm() {
    state.emailMode = "";
    emailForm.hidden = true;
  }

  // Which of prechat form, composer and "ended" is shown, from the current state.
  function layout() {
    var conversation = current();
    var pendingStart = outbox.all().some(function (i) { return i.kind === "start"; });
    var needPrechat = prechat !== "off" && !state.conversationId && !pendingStart;
    var ended = conversation && conversation.status === "closed";
    prechatForm.hidden = !needPrechat;
    composer.hidden = needPrechat; // writing into an ended conversation opens it again
    endedNode.hidden = !ended;
    transcriptButton.hidden = !state.conversationId || !logNode.querySelector("li[data-id]");
    newButton.hidden = !state.conversationId && !pendingStart;
    updateSubtitle();
  }

  function forgetConversation() {
    state.conversationId = null;
    C.store.remove(KEY_CONVERSATION);
    messages.clear();
    state.agentReadId = 0;
    state.lastReadSent = 0;
    state.caughtUp = true;
    typing.hide();
    showNotice("");
    hideEmailForm();
    showTeam();
    layout();
  }

  function useConversation(conversation) {
    var id = validId(conversation.id);
    if (!id) return;
    state.conversations[id] = conversation;
    if (id !== state.conversationId) return;
    if (conversation.agent_read_id > state.agentReadId) {
      state.agentReadId = conversation.agent_read_id;
      showSeen();
    }
    if (conversation.assignee_name) showAgent(conversation.assignee_name);
    if (conversation.has_email && state.emailMode === "contact") {
      hideEmailForm();
      showNotice(t("contact_saved"));
    }
    if (conversation.status === "closed") typing.hide();
    layout();
  }

  /* ---------------------------------------------------------------- past conversations */
  function statusLabel(status) {
    return t("status_" + status);
  }

  function renderConversations(list) {
    list.forEach(function (c) {
      if (validId(c.id)) state.conversations[c.id] = c;
    });
    var all = Object.keys(state.conversations).map(function (k) { return state.conversations[k]; });
    all.sort(function (a, b) { return String(b.updated_at).localeCompare(String(a.updated_at)); });
    while (conversationsNode.firstChild) conversationsNode.removeChild(conversationsNode.firstChild);
    all.forEach(function (c) {
      var li = C.el("li");
      var button = C.el("button", "chat-conversation");
      button.type = "button";
      if (c.id === state.conversationId) button.setAttribute("aria-current", "true");
      button.appendChild(C.el("span", "chat-conversation-title",
        c.subject || c.last_message_preview || t("conversation_number", { id: c.id })));
      var meta = C.el("span", "chat-conversation-meta");
      meta.appendChild(C.el("span", "chat-status chat-status-" + String(c.status).replace(/[^a-z]/g, ""),
        statusLabel(c.status)));
      meta.appendChild(document.createTextNode(" " + C.formatTime(c.updated_at, lang)));
      button.appendChild(meta);
      button.addEventListener("click", function () { openConversation(c.id); });
      li.appendChild(button);
      conversationsNode.appendChild(li);
    });
    noConversations.hidden = all.length > 0;
  }

  function toggleHistory(open) {
    if (open === undefined) open = historyNode.hidden;
    historyNode.hidden = !open;
    historyButton.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      conn.send({ type: "list" });
      var first = conversationsNode.querySelector("button");
      if (first) first.focus();
    }
  }

  // Every message this socket brought, per conversation: switching back to a conversation
  // shows it at once and resumes after the last one (the server does not send a socket the
  // same message twice, so asking it again from 0 would not bring them back).
  var seen = {};

  function remember(message) {
    var key = String(message.conversation_id);
    if (!seen[key]) seen[key] = {};
    seen[key][message.id] = message;
  }

  function openConversation(id) {
    toggleHistory(false);
    if (id === state.conversationId) {
      input.focus();
      return;
    }
    forgetConversation();
    state.conversationId = id;
    state.caughtUp = false;
    C.store.set(KEY_CONVERSATION, id);
    logNode.setAttribute("aria-busy", "true");
    var known = seen[String(id)] || {};
    Object.keys(known).map(Number).sort(function (a, b) { return a - b; }).forEach(function (k) {
      messages.put(known[k]);
    });
    outbox.forConversation(id).forEach(renderPending);
    useConversation(state.conversations[id] || { id: id });
    conn.send({ type: "resume", conversation_id: id, last_id: messages.maxId });
    renderConversations([]);
    layout();
    if (!composer.hidden) input.focus();
  }

  function newConversation() {
    toggleHistory(false);
    forgetConversation();
    renderConversations([]);
    if (!prechatForm.hidden) $("msgr-name").focus();
    else input.focus();
  }

  /* ---------------------------------------------------------------- sending */
  function transmit(item) {
    if (!conn.ready) return false;
    if (item.kind === "start") {
      var frame = { type: "start", client_id: item.client_id, body: item.body };
      if (item.name) frame.name = item.name;
      if (item.email) frame.email = item.email;
      return conn.send(frame);
    }
    if (!state.caughtUp || item.conversation_id !== state.conversationId) return false;
    return conn.send({
      type: "message",
      conversation_id: item.conversation_id,
      client_id: item.client_id,
      body: item.body,
      attachments: (item.attachments || []).map(function (a) { return a.upload; })
    });
  }

  function send(body, attachments, contact) {
    var item = {
      client_id: C.clientId(),
      kind: state.conversationId ? "message" : "start",
      conversation_id: state.conversationId,
      body: body,
      attachments: attachments || [],
      created_at: new Date().toISOString()
    };
    if (contact) {
      item.name = contact.name;
      item.email = contact.email;
    }
    outbox.add(item);
    renderPending(item);
    typingOut.stop();
    layout();
    transmit(item);
  }

  function resend(id) {
    var item = outbox.get(id) || pendingFailed[id];
    if (!item) return;
    delete item.failed;
    delete pendingFailed[id];
    outbox.add(item);
    renderPending(item);
    transmit(item);
  }

  var pendingFailed = {};

  // After a catch-up: drop what the server has stored already, send the rest (same client ids).
  function flushOutbox() {
    outbox.all().forEach(function (item) {
      if (item.kind === "start") {
        if (!state.conversationId) renderPending(item);
        transmit(item);
        return;
      }
      if (item.conversation_id !== state.conversationId) return;
      var stored = messages.byClientId(item.client_id);
      if (stored && stored.getAttribute("data-id") !== null) {
        outbox.remove(item.client_id);
        return;
      }
      renderPending(item);
      transmit(item);
    });
    layout();
  }

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = input.value.trim();
    if (uploads.busy()) {
      showNotice(t("wait_uploads"));
      return;
    }
    var files = uploads.ready();
    if (!body && !files.length) return;
    if (!state.conversationId && files.length) {
      // A conversation starts with text; files follow as soon as it exists.
      send(body || files.map(function (f) { return f.filename; }).join(", "), [], null);
      pendingFiles = pendingFiles.concat(files);
    } else {
      send(body, files, null);
    }
    input.value = "";
    fitInput();
    uploads.clear();
    input.focus();
  });

  var pendingFiles = [];

  prechatForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var question = $("msgr-question").value.trim();
    var name = $("msgr-name").value.trim();
    var email = $("msgr-prechat-email").value.trim();
    if (!question) {
      $("msgr-question").focus();
      return;
    }
    prechatError.hidden = true;
    send(question, [], { name: name, email: email });
    $("msgr-question").value = "";
    input.focus();
  });

  C.enterSends(input, function () {
    if (typeof composer.requestSubmit === "function") composer.requestSubmit();
    else composer.dispatchEvent(new Event("submit", { cancelable: true }));
  });
  var fitInput = C.autoGrow(input);

  var typingOut = new C.TypingSender(function (value) {
    if (!state.conversationId || !state.caughtUp) return false;
    return conn.send({ type: "typing", conversation_id: state.conversationId, typing: value });
  });
  input.addEventListener("input", function () {
    typingOut.input(input.value.trim().length > 0);
  });
  input.addEventListener("blur", function () { typingOut.stop(); });

  var typing = new C.TypingShower($("msgr-typing"));

  /* ---------------------------------------------------------------- attachments */
  var uploads = new C.Uploads(uploadsNode, {
    url: cfg.upload_url,
    t: t,
    max: 5,
    focus: input,
    auth: function () {
      return token().then(function (value) { return { Authorization: "Bearer " + value }; });
    },
    reauth: function () { state.tokenChecked = false; }
  });

  fileInput.addEventListener("change", function () {
    uploads.add(fileInput.files);
    fileInput.value = "";
  });
  if (!cfg.upload_url) fileInput.parentNode.hidden = true;  // the core keeps no files

  /* ---------------------------------------------------------------- read receipts */
  var receipts = new C.ReadReceipts({
    scroller: scroller,
    messages: messages,
    send: function (frame) { return conn.send(frame); },  // conn is made further down
    state: state,
    current: function () { return state.conversationId; },
    ready: function () { return state.caughtUp; }
  });
  function scheduleRead() { receipts.schedule(); }

  /* ---------------------------------------------------------------- the widget */
  // Inside the widget's panel (a frame of our own origin), tell it what the visitor should
  // notice while the panel is closed; nothing goes to any other origin.
  var inWidget = window.parent !== window;
  function tellWidget(event, data) {
    if (inWidget) window.parent.postMessage({ type: "portal-chat", event: event, data: data }, location.origin);
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") tellWidget("escape", null);
  });
  // The widget says which page of the company's site the visitor is on; agents see it.
  var hostPage = null;
  window.addEventListener("message", function (event) {
    var data = event.data || {};
    if (!inWidget || event.source !== window.parent || event.origin !== location.origin) return;
    if (data.type === "portal-widget:page" && typeof data.url === "string") {
      hostPage = { url: data.url, title: typeof data.title === "string" ? data.title : "" };
      sendPage();
    }
  });
  function sendPage() {
    if (!hostPage || !state.conversationId || !conn) return;
    conn.send({ type: "page", conversation_id: state.conversationId, url: hostPage.url, title: hostPage.title });
  }

  /* ---------------------------------------------------------------- frames */
  var handlers = {
    ready: function (frame) {
      if (frame.visitor_id) state.visitorId = frame.visitor_id;
      renderConversations(frame.conversations || []);
      if (state.conversationId) {
        if (state.conversations[state.conversationId]) useConversation(state.conversations[state.conversationId]);
      } else {
        state.caughtUp = true;
        flushOutbox();
      }
      layout();
    },

    started: function (frame) {
      var conversation = frame.conversation || {};
      var item = frame.client_id ? outbox.get(frame.client_id) : null;
      if (frame.client_id) outbox.remove(frame.client_id);
      var id = validId(conversation.id);
      if (!id) return;
      state.conversationId = id;
      state.caughtUp = false; // the server follows the new conversation: history, then caught_up
      C.store.set(KEY_CONVERSATION, id);
      state.conversations[id] = conversation;
      if (item && item.attachments && item.attachments.length) pendingFiles = pendingFiles.concat(item.attachments);
      useConversation(conversation);
      renderConversations([]);
      tellWidget("conversation", { id: id });
    },

    message: function (frame) {
      var message = frame.message;
      if (!message || message.internal) return;
      remember(message);
      if (state.conversations[message.conversation_id]) {
        state.conversations[message.conversation_id].last_message_preview = message.body;
      }
      if (message.conversation_id !== state.conversationId) return;
      if (message.client_id) {
        outbox.remove(message.client_id);
        delete pendingFailed[message.client_id];
      }
      var result = messages.put(message);
      if (message.author_type === "agent") {
        showAgent(message.author_name);
        typing.hide();
      }
      if (result.added && message.author_type !== "visitor") scheduleRead();
      if (result.added && state.caughtUp && message.author_type === "agent") {
        tellWidget("message", { author_name: message.author_name, body: message.body });
      }
      if (message.author_type === "visitor") showSeen();
      layout();
    },

    ack: function (frame) {
      outbox.remove(frame.client_id);
      var node = messages.byClientId(frame.client_id);
      // pending: kept by the service, not at the help desk yet; the stored message follows.
      if (node && node.getAttribute("data-id") === null) setMessageState(node, frame.pending ? t("sending") : "");
    },

    // A message kept by the service until the help desk has it (another tab's, or after a
    // reload); "not_sent": the help desk refused it and an admin looks at it.
    sending: function (frame) {
      var message = frame.message;
      if (!message || message.internal || message.conversation_id !== state.conversationId) return;
      var node = messages.byClientId(message.client_id);
      if (node && node.getAttribute("data-id") !== null) return; // the stored copy is here
      if (message.state === "not_sent") {
        node = messages.putPending(message);
        node.classList.add("is-failed");
        setMessageState(node, t("not_sent"));
      } else if (!node) {
        setMessageState(messages.putPending(message), t("sending"));
      }
      layout();
    },

    caught_up: function (frame) {
      if (frame.conversation_id !== state.conversationId) return;
      state.caughtUp = true;
      sendPage();
      logNode.removeAttribute("aria-busy");
      if (pendingFiles.length) {
        var files = pendingFiles;
        pendingFiles = [];
        send("", files, null);
      }
      flushOutbox();
      showSeen();
      scheduleRead();
      messages.scrollDown();
    },

    typing: function (frame) {
      if (frame.conversation_id !== state.conversationId || frame.author_type === "visitor") return;
      if (frame.typing) typing.show(t("typing", { name: frame.author_name || t("agent") }));
      else typing.hide();
    },

    read: function (frame) {
      if (frame.conversation_id !== state.conversationId) return;
      if (frame.reader === "visitor") {
        // another tab of ours read it
        if (frame.id > state.lastReadSent) state.lastReadSent = frame.id;
        return;
      }
      if (frame.id > state.agentReadId) {
        state.agentReadId = frame.id;
        showSeen();
      }
    },

    conversation: function (frame) {
      if (!frame.conversation) return;
      useConversation(frame.conversation);
      renderConversations([]);
    },

    conversations: function (frame) {
      renderConversations(frame.conversations || []);
    },

    availability: function (frame) {
      if (frame.conversation_id !== state.conversationId) return;
      if (frame.state === "online") {
        showNotice("");
        return;
      }
      var conversation = current();
      var needsEmail = frame.needs_email !== undefined ? frame.needs_email : !(conversation && conversation.has_email);
      if (frame.ticket) {
        showNotice(t("ticketed", { number: frame.ticket }));
      } else {
        var reason = ["outside_hours", "no_agents", "no_answer"].indexOf(frame.reason) >= 0 ? frame.reason : "no_agents";
        showNotice(t(reason));
      }
      if (needsEmail && !frame.ticket) showEmailForm("contact", t("email_hint_contact"));
      else if (state.emailMode === "contact") hideEmailForm();
      messages.scrollDown();
    },

    transcript_sent: function (frame) {
      if (frame.conversation_id !== state.conversationId) return;
      state.transcriptPending = false;
      if (state.emailMode === "transcript") hideEmailForm();
      showNotice(t("transcript_sent"));
    },

    error: function (frame) {
      var item = frame.client_id ? outbox.get(frame.client_id) : null;
      if (item) {
        if (frame.code === "rate_limited" || frame.code === "server_error") {
          window.setTimeout(function () { transmit(item); }, 2000);
          return;
        }
        outbox.remove(item.client_id);
        if (item.kind === "start") {
          var node = messages.byClientId(item.client_id);
          if (node) node.parentNode.removeChild(node);
          layout();
          if (!prechatForm.hidden) {
            $("msgr-question").value = item.body;
            $("msgr-name").value = item.name || "";
            $("msgr-prechat-email").value = item.email || "";
            prechatError.textContent = t(frame.code === "unavailable" ? "start_unavailable" : "start_failed");
            prechatError.hidden = false;
          } else {
            input.value = item.body;
            showNotice(t(frame.code === "unavailable" ? "start_unavailable" : "start_failed"));
          }
          return;
        }
        item.failed = true;
        pendingFailed[item.client_id] = item;
        renderPending(item);
        return;
      }
      if (frame.code === "not_found" && !state.caughtUp && state.conversationId) {
        forgetConversation(); // a remembered conversation that is not (or no longer) ours
        renderConversations([]);
        return;
      }
      if (state.transcriptPending) {
        state.transcriptPending = false;
        showNotice(frame.code === "invalid" ? t("email_invalid") : t("transcript_failed"));
        return;
      }
      if (state.emailMode === "contact" && frame.code === "invalid") {
        showNotice(t("email_invalid"));
        return;
      }
      if (frame.code === "rate_limited") showNotice(t("rate_limited"));
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
    var text = value === "stopped" ? t("not_available") : value === "reconnecting" ? t("offline") : t("connecting");
    // Quick reconnects do not flash a message.
    connectionTimer = window.setTimeout(function () {
      connectionNode.textContent = text;
      connectionNode.hidden = false;
    }, value === "stopped" ? 0 : 1500);
  }

  var conn = new C.Connection({
    url: C.wsUrl(cfg.ws_url),
    hello: function () {
      state.caughtUp = false;
      return token().then(function (value) {
        var frame = { type: "hello", token: value };
        if (state.conversationId) {
          frame.conversation_id = state.conversationId;
          frame.last_id = messages.maxId;
          if (!messages.maxId) logNode.setAttribute("aria-busy", "true");
        }
        return frame;
      });
    },
    onFrame: function (frame) {
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
      if (code === 4401) state.tokenChecked = false; // refresh the token, then try again
      if (code === 4403) return false; // this site may not use the chat: do not hammer
      return true;
    }
  });

  /* ---------------------------------------------------------------- the rest of the page */
  historyButton.addEventListener("click", function () { toggleHistory(); });
  historyNode.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      toggleHistory(false);
      historyButton.focus();
    }
  });
  newButton.addEventListener("click", newConversation);
  $("msgr-new-after-end").addEventListener("click", newConversation);

  transcriptButton.addEventListener("click", function () {
    if (!state.conversationId) return;
    var conversation = current();
    if (conversation && conversation.has_email) {
      state.transcriptPending = true;
      conn.send({ type: "transcript", conversation_id: state.conversationId });
      showNotice(t("transcript_sending"));
    } else {
      showEmailForm("transcript", t("email_hint_transcript"));
      emailInput.focus();
    }
  });

  emailForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var email = emailInput.value.trim();
    if (!email || !state.conversationId) return;
    if (state.emailMode === "transcript") {
      state.transcriptPending = true;
      conn.send({ type: "transcript", conversation_id: state.conversationId, email: email });
      showNotice(t("transcript_sending"));
    } else {
      conn.send({ type: "contact", conversation_id: state.conversationId, email: email });
    }
  });

  // The on-screen keyboard shrinks the visual viewport: keep the composer above it.
  if (window.visualViewport) {
    var fit = function () {
      document.documentElement.style.setProperty("--chat-vh", window.visualViewport.height + "px");
    };
    window.visualViewport.addEventListener("resize", fit);
    fit();
  }

  // Another tab started or opened a conversation while this one had none: follow it.
  window.addEventListener("storage", function (event) {
    if (event.key !== KEY_CONVERSATION || state.conversationId) return;
    var id = validId(C.store.get(KEY_CONVERSATION, null));
    if (id) openConversation(id);
  });

  // Unsent messages of the remembered conversation show at once, marked as sending.
  if (state.conversationId) {
    outbox.forConversation(state.conversationId).forEach(renderPending);
  }
  outbox.all().forEach(function (item) {
    if (item.kind === "start" && !state.conversationId) renderPending(item);
  });
  updateSubtitle();
  layout();
  conn.connect();
})();
