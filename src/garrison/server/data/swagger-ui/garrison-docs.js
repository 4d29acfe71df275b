// Starts Swagger UI on /api/docs. A file of its own, not an inline script, so that the page's
// Content-Security-Policy can allow scripts from this server only.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // the default sends the document to an outside validator
    presets: [SwaggerUIBundle.presets.apis],
  });
});
