/* Web forms: fields per department, article suggestions under the subject, no double submit.
   No framework and no inline script (the CSP is script-src 'self'); the server validates all. */
(function () {
  "use strict";
  var form = document.querySelector("form.web-form[data-api]");
  if (!form) return;
  var api = form.getAttribute("data-api");
  var lang = form.getAttribute("data-lang") || "";
  var tokenInput = form.querySelector("input[name=form_token]");

  /* Fields and choices for the chosen department (data-departments: ids, empty = all). */
  var departmentSelect = form.querySelector("select[name=department_id]");
  function applyDepartment() {
    var department = departmentSelect
      ? departmentSelect.value
      : form.getAttribute("data-department") || "";
    var items = form.querySelectorAll("[data-departments]");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var ids = el.getAttribute("data-departments").split(" ").filter(Boolean);
      var shown = ids.length === 0 || ids.indexOf(department) !== -1;
      el.hidden = !shown;
      if (el.tagName === "OPTION") {
        el.disabled = !shown;
        if (!shown && el.selected) el.selected = false;
        continue;
      }
      var inputs = el.querySelectorAll("input, select, textarea");
      for (var j = 0; j < inputs.length; j++) inputs[j].disabled = !shown;
    }
  }
  if (departmentSelect) {
    departmentSelect.addEventListener("change", applyDepartment);
    applyDepartment();
  }

  /* Suggestions: up to five articles for the subject as typed; opening one is recorded. */
  var subject = form.querySelector("input[name=subject]");
  var box = document.getElementById("suggestions");
  var timer = null;
  var lastQuery = "";

  function record(articleId, query) {
    var body = JSON.stringify({
      form_token: tokenInput ? tokenInput.value : "",
      article_id: articleId,
      query: query
    });
    var url = api + "/deflections";
    if (navigator.sendBeacon && navigator.sendBeacon(url, new Blob([body], { type: "text/plain" }))) {
      return;
    }
    fetch(url, { method: "POST", body: body, keepalive: true, credentials: "omit" }).catch(function () {});
  }

  function show(results, query) {
    box.textContent = "";
    if (!results.length) {
      box.hidden = true;
      return;
    }
    var heading = document.createElement("p");
    heading.className = "hint";
    heading.textContent = box.getAttribute("data-heading");
    var list = document.createElement("ul");
    results.forEach(function (result) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = result.url;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = result.title;
      var opened = function () { record(result.article_id, query); };
      link.addEventListener("click", opened);
      link.addEventListener("auxclick", opened);
      item.appendChild(link);
      if (result.snippet) {
        var snippet = document.createElement("p");
        snippet.className = "snippet";
        snippet.innerHTML = result.snippet; /* escaped by the server, with <mark> only */
        item.appendChild(snippet);
      }
      list.appendChild(item);
    });
    box.appendChild(heading);
    box.appendChild(list);
    box.hidden = false;
  }

  function suggest() {
    var query = subject.value.trim();
    if (query === lastQuery) return;
    lastQuery = query;
    if (query.length < 3) {
      show([], query);
      return;
    }
    var url = api + "/suggestions?q=" + encodeURIComponent(query) + "&lang=" + encodeURIComponent(lang);
    fetch(url, { headers: { Accept: "application/json" }, credentials: "omit" })
      .then(function (response) { return response.ok ? response.json() : { results: [] }; })
      .then(function (data) { if (query === lastQuery) show(data.results || [], query); })
      .catch(function () {});
  }

  if (subject && box) {
    subject.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(suggest, 250);
    });
  }

  /* A second click while the first is on its way sends nothing (the server would make one ticket
     anyway: the idempotency key is the same). */
  form.addEventListener("submit", function () {
    var buttons = form.querySelectorAll("button[type=submit]");
    setTimeout(function () {
      for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    }, 0);
  });
})();
