// Starts Swagger UI (vendored: ./swagger-ui/, from npm's swagger-ui-dist) on the merged
// OpenAPI document. Served by the gateway as a file because the page's Content-Security-Policy
// allows scripts from 'self' only: no inline start-up code, no CDN. "Try it out" sends the
// requests to this same origin with the bearer token given under Authorize (kept in memory
// only: persistAuthorization is off, so the token never lands in localStorage).
(function () {
  "use strict";
  window.ui = window.SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    filter: true,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 1,
    docExpansion: "list",
    persistAuthorization: false,
    tryItOutEnabled: false,
    // Never send the document to the public validator (no third-party calls from this page).
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
