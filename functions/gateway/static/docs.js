// Renders /api/openapi.json as a filterable list of operations, grouped by tag.
// Served by the gateway itself (no CDN): the page's CSP allows scripts from 'self' only.
// Text from the document is always inserted with textContent, never as HTML.
(function () {
  "use strict";

  var METHODS = ["get", "post", "put", "patch", "delete", "head", "options"];
  var container = document.getElementById("operations");
  var statusLine = document.getElementById("status");
  var filter = document.getElementById("filter");

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function resolve(spec, schema) {
    if (schema && typeof schema.$ref === "string") {
      var prefix = "#/components/schemas/";
      if (schema.$ref.indexOf(prefix) === 0) {
        var name = schema.$ref.slice(prefix.length);
        var found = ((spec.components || {}).schemas || {})[name];
        if (found) return { name: name, schema: found };
      }
    }
    return { name: null, schema: schema };
  }

  function schemaBlock(spec, schema) {
    var wrap = el("div", "schema");
    var r = resolve(spec, schema);
    if (r.name) wrap.appendChild(el("div", "schema-name", r.name));
    wrap.appendChild(el("pre", null, JSON.stringify(r.schema, null, 2)));
    return wrap;
  }

  function parametersTable(params) {
    var table = el("table", "params");
    var head = el("tr");
    ["name", "in", "required", "type", "description"].forEach(function (h) {
      head.appendChild(el("th", null, h));
    });
    table.appendChild(head);
    params.forEach(function (p) {
      var row = el("tr");
      var schema = p.schema || {};
      var describe = function (s) {
        return (s.type || (s.$ref ? s.$ref.split("/").pop() : "")) +
          (s.format ? " (" + s.format + ")" : "");
      };
      var type = schema.anyOf ? schema.anyOf.map(describe).join(" | ") : describe(schema);
      [p.name, p.in, p.required ? "yes" : "no", type, p.description || ""].forEach(function (v) {
        row.appendChild(el("td", null, v));
      });
      table.appendChild(row);
    });
    return table;
  }

  function operation(spec, path, method, op) {
    var details = el("details", "op");
    details.dataset.search = (method + " " + path + " " + (op.summary || "")).toLowerCase();
    var summary = el("summary");
    summary.appendChild(el("span", "method method-" + method, method.toUpperCase()));
    summary.appendChild(el("code", "path", path));
    summary.appendChild(el("span", "summary", op.summary || ""));
    var isPublic = Array.isArray(op.security) && op.security.length === 0;
    summary.appendChild(el("span", isPublic ? "public" : "lock", isPublic ? "public" : "bearer"));
    details.appendChild(summary);

    var body = el("div", "op-body");
    if (op.description) body.appendChild(el("p", "description", op.description));
    if (op.parameters && op.parameters.length) {
      body.appendChild(el("h4", null, "Parameters"));
      body.appendChild(parametersTable(op.parameters));
    }
    var content = ((op.requestBody || {}).content || {})["application/json"];
    if (content && content.schema) {
      body.appendChild(el("h4", null, "Request body (application/json)"));
      body.appendChild(schemaBlock(spec, content.schema));
    }
    body.appendChild(el("h4", null, "Responses"));
    var list = el("ul", "responses");
    Object.keys(op.responses || {}).sort().forEach(function (code) {
      var resp = op.responses[code] || {};
      var item = el("li");
      item.appendChild(el("strong", null, code + " "));
      var ref = resp.$ref ? resp.$ref.split("/").pop() : null;
      item.appendChild(el("span", null, ref ? ref + " (problem+json)" : resp.description || ""));
      var media = (resp.content || {})["application/json"];
      if (media && media.schema) item.appendChild(schemaBlock(spec, media.schema));
      list.appendChild(item);
    });
    body.appendChild(list);
    details.appendChild(body);
    return details;
  }

  function render(spec) {
    var groups = {};
    Object.keys(spec.paths || {}).sort().forEach(function (path) {
      var item = spec.paths[path];
      METHODS.forEach(function (method) {
        var op = item[method];
        if (!op) return;
        var tag = (op.tags && op.tags[0]) || "other";
        (groups[tag] = groups[tag] || []).push(operation(spec, path, method, op));
      });
    });
    var count = 0;
    Object.keys(groups).sort().forEach(function (tag) {
      var section = el("section", "tag");
      section.appendChild(el("h2", null, tag));
      groups[tag].forEach(function (node) {
        section.appendChild(node);
        count += 1;
      });
      container.appendChild(section);
    });
    var missing = spec["x-switchyard-missing"] || [];
    statusLine.textContent = count + " operations" + (spec.info ? " \u2014 " +
      spec.info.title + " " + spec.info.version : "") +
      (missing.length ? " (not answering: " + missing.join(", ") + ")" : "");
  }

  function applyFilter() {
    var q = filter.value.trim().toLowerCase();
    Array.prototype.forEach.call(container.querySelectorAll("details.op"), function (d) {
      d.hidden = q !== "" && d.dataset.search.indexOf(q) === -1;
    });
    Array.prototype.forEach.call(container.querySelectorAll("section.tag"), function (s) {
      s.hidden = s.querySelectorAll("details.op:not([hidden])").length === 0;
    });
  }

  filter.addEventListener("input", applyFilter);
  fetch("/api/openapi.json", { headers: { Accept: "application/json" } })
    .then(function (resp) {
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      return resp.json();
    })
    .then(render)
    .catch(function (err) {
      statusLine.textContent = "Could not load /api/openapi.json: " + err.message;
    });
})();
