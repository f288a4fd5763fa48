// Starts Swagger UI on /docs. A file rather than the inline script FastAPI's own page has, so the
// Content-Security-Policy can forbid inline scripts; the settings come from the page's JSON block.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("swagger-config").textContent);
  window.ui = SwaggerUIBundle(Object.assign(config, {
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  }));
})();
