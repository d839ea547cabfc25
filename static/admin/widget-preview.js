// The live preview on /admin/widget: a mock launcher and panel drawn from the form's values as
// the admin types. The page's CSP allows no inline style attributes in markup, but properties
// set through element.style are allowed, so the offsets travel as CSS custom properties.
(function () {
  "use strict";
  var form = document.getElementById("widget-form");
  var stage = document.getElementById("widget-preview");
  if (!form || !stage) return;
  var launcher = document.getElementById("preview-launcher");
  var greeting = document.getElementById("preview-greeting");
  var maxOffset = parseInt(stage.dataset.maxOffset, 10) || 200;

  // Values the server would refuse show as the defaults, as the widget itself would.
  function offset(name) {
    var value = form.elements[name].value.trim();
    var number = /^\d+$/.test(value) ? parseInt(value, 10) : NaN;
    return (isNaN(number) || number > maxOffset ? 20 : number) + "px";
  }

  function text(name, fallback) {
    return form.elements[name].value.replace(/\s+/g, " ").trim() || fallback;
  }

  function draw() {
    var side = form.querySelector('input[name="position"]:checked');
    stage.dataset.position = side ? side.value : "right";
    stage.style.setProperty("--offset-x", offset("offset_x"));
    stage.style.setProperty("--offset-y", offset("offset_y"));
    launcher.textContent = text("label", stage.dataset.label);
    greeting.textContent = text("greeting", stage.dataset.greeting);
    var items = stage.querySelectorAll("[data-app]");
    for (var i = 0; i < items.length; i++) {
      var box = form.querySelector('input[name="apps"][value="' + items[i].dataset.app + '"]');
      items[i].hidden = !(box && box.checked);
    }
  }

  form.addEventListener("input", draw);
  form.addEventListener("change", draw);
  draw();
})();
