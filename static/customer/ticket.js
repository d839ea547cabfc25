// Live updates of a ticket page: new public replies and status changes, without a reload.
// Everything from the server goes into the page through textContent, never as HTML.
(function () {
  "use strict";

  var list = document.getElementById("conversation");
  if (!list || !window.EventSource) return;
  var statusBadge = document.getElementById("ticket-status");
  var rating = document.getElementById("rating");
  var after = parseInt(list.getAttribute("data-after") || "0", 10) || 0;
  var url = list.getAttribute("data-events") + "?after=" + after;

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function formatTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderReply(reply) {
    if (document.querySelector('[data-reply-id="' + Number(reply.id) + '"]')) return;
    var item = el("li", "reply reply-" + (reply.author_type === "agent" ? "agent" : "customer"));
    item.id = "reply-" + Number(reply.id);
    item.setAttribute("data-reply-id", String(Number(reply.id)));
    item.classList.add("reply-new");

    var meta = el("p", "reply-meta");
    meta.appendChild(el("strong", "reply-author", reply.author_name || ""));
    meta.appendChild(document.createTextNode(" "));
    var time = el("time", "", formatTime(reply.created_at));
    time.setAttribute("datetime", reply.created_at);
    meta.appendChild(time);
    item.appendChild(meta);
    item.appendChild(el("div", "reply-body", reply.body || ""));

    if (reply.attachments && reply.attachments.length) {
      var files = el("ul", "attachments");
      reply.attachments.forEach(function (file) {
        var li = el("li");
        var link = el("a", "", file.filename);
        link.href = "/portal/attachments/" + Number(file.id);
        link.setAttribute("download", "");
        li.appendChild(link);
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("span", "count", (file.size / 1024).toFixed(1) + " KB"));
        files.appendChild(li);
      });
      item.appendChild(files);
    }
    list.appendChild(item);
  }

  function renderStatus(data) {
    if (statusBadge) {
      statusBadge.textContent = data.label;
      statusBadge.className = "status status-" + String(data.status).replace(/[^a-z]/g, "");
    }
    if (rating) rating.hidden = !data.closed;
    var expected = document.getElementById("expected-response");
    if (expected) expected.hidden = !!data.closed;
  }

  var source = new EventSource(url);
  source.addEventListener("reply", function (event) {
    try {
      renderReply(JSON.parse(event.data));
    } catch (err) {
      /* a malformed event is skipped */
    }
  });
  source.addEventListener("status", function (event) {
    try {
      renderStatus(JSON.parse(event.data));
    } catch (err) {
      /* a malformed event is skipped */
    }
  });

  // A double click sends the form once; the idempotency key covers retries anyway.
  var form = document.getElementById("reply-form");
  if (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (button) window.setTimeout(function () { button.disabled = true; }, 0);
    });
  }
  window.addEventListener("pagehide", function () { source.close(); });
})();
