// In an app's iframe variant: tell the page that frames us how tall we are, so it can size the
// iframe without a scroll bar. Only to that page's own origin, and only when that origin is one
// of the tenant's sites (or the tenant lets any site frame its apps): never to "*".
"use strict";
(function () {
  var me = document.currentScript;
  if (window.parent === window || !me) return;
  var sites = (me.getAttribute("data-sites") || "").split(" ").filter(Boolean);
  var anySite = me.getAttribute("data-any") === "1";

  // The framing page's origin: the browser says it (ancestorOrigins), or the first page in the
  // frame was opened from it (referrer); later pages in the frame remember it for the session.
  var parent = "";
  if (location.ancestorOrigins && location.ancestorOrigins.length) {
    parent = location.ancestorOrigins[0];
  } else {
    try { parent = sessionStorage.getItem("portal:parent") || ""; } catch (e) { /* storage off */ }
    if (!parent && document.referrer) {
      try { parent = new URL(document.referrer).origin; } catch (e) { parent = ""; }
    }
  }
  if (!parent || parent === "null" || parent === location.origin) return;
  if (!anySite && sites.indexOf(parent) < 0) return;
  try { sessionStorage.setItem("portal:parent", parent); } catch (e) { /* storage off */ }

  var last = -1;
  function report() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height === last) return;
    last = height;
    window.parent.postMessage({ type: "portal:height", height: height }, parent);
  }
  function start() {
    report();
    if (window.ResizeObserver) new ResizeObserver(report).observe(document.documentElement);
    else window.addEventListener("resize", report);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
