// The docs page: renders /openapi.json and lets a user send each request. No framework, no CDN.
// Text from the document (descriptions, schemas) is only ever inserted as text, never as HTML.
"use strict";

const specUrl = new URL("openapi.json", document.baseURI);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function exampleBodies(operation) {
  const media = operation.requestBody && operation.requestBody.content["application/json"];
  if (!media) return [];
  return Object.entries(media.examples || {}).map(([name, ex]) => ({name, summary: ex.summary, value: ex.value}));
}

async function send(method, path, body, output) {
  const headers = {};
  const key = document.getElementById("api-key").value;
  if (key) headers["Authorization"] = "Bearer " + key;
  if (body !== null) headers["Content-Type"] = "application/json";
  output.textContent = "…";
  output.className = "response";
  try {
    const response = await fetch(new URL(path.replace(/^\//, ""), document.baseURI),
                                 {method, headers, body: body === null ? undefined : body});
    const text = await response.text();
    let shown = text;
    try { shown = pretty(JSON.parse(text)); } catch (e) { /* not JSON: show as is */ }
    const version = response.headers.get("X-Model-Version");
    output.textContent = `HTTP ${response.status}` + (version ? ` · version ${version}` : "") + "\n" + shown;
    output.dataset.status = String(response.status);
    output.className = "response " + (response.ok ? "status-ok" : "status-error");
  } catch (error) {
    output.textContent = "request failed: " + error;
    output.dataset.status = "failed";
    output.className = "response status-error";
  }
}

function renderOperation(path, method, operation) {
  const output = el("pre", {class: "response"});
  const form = el("div", {class: "try"});
  const params = (operation.parameters || []).filter(p => p.in === "path");
  const inputs = {};
  for (const param of params) {
    const input = el("input", {name: param.name});
    const values = (param.schema && param.schema.enum) || [];
    if (values.length) input.value = values[0];
    inputs[param.name] = input;
    form.append(el("label", {}, `${param.name} `, input));
  }
  let textarea = null;
  if (operation.requestBody) {
    const examples = exampleBodies(operation);
    textarea = el("textarea", {name: "body", spellcheck: false});
    textarea.value = examples.length ? pretty(examples[0].value) : "{}";
    if (examples.length > 1) {
      const select = el("select", {});
      examples.forEach((ex, i) => select.append(el("option", {value: String(i)}, ex.summary || ex.name)));
      select.addEventListener("change", () => { textarea.value = pretty(examples[Number(select.value)].value); });
      form.append(el("label", {}, "example ", select));
    }
    form.append(textarea);
  }
  const button = el("button", {type: "button", class: "send"}, "Send");
  button.addEventListener("click", () => {
    let url = path;
    for (const [name, input] of Object.entries(inputs)) url = url.replace(`{${name}}`, encodeURIComponent(input.value));
    send(method.toUpperCase(), url, textarea ? textarea.value : null, output);
  });
  form.append(button);
  const summary = el("summary", {},
    el("span", {class: "method " + method}, method.toUpperCase()), " ", path, " — ", operation.summary || "");
  const statuses = el("p", {}, "Responses: " + Object.keys(operation.responses || {}).join(", "));
  return el("details", {class: "operation", "data-operation-id": operation.operationId || ""},
            summary, statuses, form, output);
}

async function main() {
  const main = document.getElementById("operations");
  let spec;
  try {
    const response = await fetch(specUrl);
    spec = await response.json();
  } catch (error) {
    main.textContent = "could not load openapi.json: " + error;
    return;
  }
  document.getElementById("title").textContent = spec.info.title + " API";
  document.getElementById("description").textContent = spec.info.description || "";
  document.getElementById("version").textContent = "version " + spec.info.version;
  if (spec.components && spec.components.securitySchemes) document.getElementById("auth").hidden = false;
  main.textContent = "";
  const byTag = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      const tag = (operation.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(renderOperation(path, method, operation));
    }
  }
  for (const [tag, nodes] of byTag) {
    main.append(el("h2", {}, tag), ...nodes);
  }
  document.body.dataset.ready = "true";
}

main();
