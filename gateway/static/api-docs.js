// Starts Swagger UI on the OpenAPI page (gateway/api_docs.py). A file, not an inline script:
// the page's policy runs the gateway's own files only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // Its online validator's badge (standalone layout only) sends the document's address to
    // validator.swagger.io: off, whatever the layout.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
