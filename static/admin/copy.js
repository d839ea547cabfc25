// Copy buttons for the code an admin pastes into their site. The buttons stay hidden where the
// clipboard cannot be written (no script, or an insecure context): the code can still be selected.
"use strict";
(function () {
  if (!navigator.clipboard) return;
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      var code = document.getElementById(button.getAttribute("data-copy"));
      navigator.clipboard.writeText(code.textContent).then(function () {
        button.textContent = "✓ " + label;
        setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  });
})();
