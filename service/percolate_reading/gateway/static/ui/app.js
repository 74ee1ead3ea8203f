// percolate-reading web UI: plain JavaScript, no dependencies, same-origin API calls only.
// The API key lives in sessionStorage (this tab, until it closes), never in a cookie or localStorage.
"use strict";

const KEY_STORE = "percolate-reading.api-key";
const POLL_MS = 1500;
const $ = (sel) => document.querySelector(sel);

// panelTurn: each preview opened and each tab shown takes a new turn; a render that finishes
// after a later turn began is dropped, so a slow fetch never paints over what was asked later.
const state = { jobs: new Map(), previewJob: null, timer: null, panelTurn: 0 };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function announce(message) {
  const box = $("#status");
  box.textContent = message;
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => { box.textContent = ""; }, 4000);
}

function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }

async function api(path, options = {}) {
  const key = apiKey();
  if (!key) throw new Error("enter your API key first");
  const headers = Object.assign({ Authorization: `Bearer ${key}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error) message = `${response.status} ${body.error.code}: ${body.error.message}`;
    } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

// --- key -----------------------------------------------------------------------------------------

function setupKey() {
  const input = $("#api-key");
  input.value = apiKey();
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, input.value.trim());
    announce("Key set for this tab.");
    refreshJobs();
  });
  $("#forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    input.value = "";
    state.jobs.clear();
    renderJobs();
    announce("Key forgotten.");
  });
}

// --- uploads -------------------------------------------------------------------------------------

// The options form's fields are named as POST /v1/parse names them; blank ones are left out
// (the server's defaults), and the outputs only when they differ from the default set.
function currentOptions() {
  const form = $("#options");
  const fields = {};
  for (const input of form.querySelectorAll("input[name], select[name]")) {
    if (input.name === "outputs") continue;
    const value = input.type === "password" ? input.value : input.value.trim();
    if (value) fields[input.name] = value;
  }
  const boxes = Array.from(form.querySelectorAll("input[name=outputs]"));
  const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
  const defaults = boxes.filter((box) => box.defaultChecked).map((box) => box.value);
  if (chosen.join() !== defaults.join()) fields.outputs = chosen.join(",");
  return fields;
}

// The browser's own checks (pattern, min/max, URL) plus the rules across fields; false (and
// the first problem shown at its field) when the options would be refused.
function optionsValid() {
  const form = $("#options");
  const boxes = Array.from(form.querySelectorAll("input[name=outputs]"));
  boxes[0].setCustomValidity(boxes.some((box) => box.checked) ? "" : "Choose at least one output.");
  const size = form.elements.chunk_size, overlap = form.elements.chunk_overlap;
  const tooBig = size.value && overlap.value && Number(overlap.value) >= Number(size.value);
  overlap.setCustomValidity(tooBig ? "The overlap must be smaller than the chunk size." : "");
  if (form.checkValidity()) return true;
  form.reportValidity();
  const bad = form.querySelector("input:invalid, select:invalid");
  announce(`Options: ${bad ? bad.validationMessage : "check the highlighted field"}`);
  return false;
}

function describeOptions(fields) {
  const shown = Object.entries(fields)
    .filter(([name]) => name !== "password")
    .map(([name, value]) => `${name}=${value}`);
  if (fields.password) shown.push("password set");
  return shown.length ? ` (${shown.join(", ")})` : "";
}

async function uploadFiles(files) {
  if (!optionsValid()) return;
  const options = currentOptions();
  const described = describeOptions(options);
  await Promise.all(Array.from(files).map(async (file) => {
    const item = el("li", { text: `${file.name}: uploading…` });
    $("#uploads").prepend(item);
    const form = new FormData();
    for (const [name, value] of Object.entries(options)) form.append(name, value);
    form.append("file", file, file.name);
    try {
      const response = await api("/v1/parse", { method: "POST", body: form });
      const accepted = await response.json();
      item.textContent = `${file.name}: queued as ${accepted.job_id}${described}`;
      item.dataset.job = accepted.job_id;
    } catch (error) {
      item.textContent = `${file.name}: ${error.message}`;
      item.className = "error";
    }
  }));
  refreshJobs();
}

function setupDrop() {
  const zone = $("#drop-zone");
  const input = $("#file-input");
  // Options the browser can check are checked before the picker opens, not after.
  const choose = () => { if (optionsValid()) input.click(); };
  zone.addEventListener("click", choose);
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); choose(); }
  });
  input.addEventListener("change", () => {
    if (input.files.length) uploadFiles(input.files);
    input.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("over"); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) uploadFiles(event.dataTransfer.files);
  });
}

// --- jobs ----------------------------------------------------------------------------------------

function seconds(job) {
  if (job.started_at && job.finished_at) {
    return ((Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000).toFixed(2);
  }
  const total = Object.values(job.timings || {}).reduce((a, b) => a + b, 0);
  return total ? total.toFixed(2) : "–";
}

function renderJobs() {
  const body = $("#jobs tbody");
  const jobs = Array.from(state.jobs.values()).sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  body.replaceChildren(...jobs.map((job) => {
    const created = new Date(job.created_at);
    const actions = el("td", {},
      el("button", {
        type: "button", text: "Preview", disabled: job.status !== "succeeded",
        "aria-label": `Preview ${job.file_name}`, "data-job": job.job_id,
        onclick: () => openPreview(job.job_id),
      }),
      job.status === "queued" ? el("button", {
        type: "button", text: "Cancel", "aria-label": `Cancel ${job.file_name}`,
        onclick: () => cancelJob(job.job_id),
      }) : null);
    return el("tr", { "data-job": job.job_id, "data-status": job.status },
      el("td", { class: "file", text: job.file_name, title: job.job_id }),
      el("td", { class: `status status-${job.status}`, text: job.status }),
      el("td", { text: String(job.attempts) }),
      el("td", { text: created.toLocaleTimeString(), title: job.created_at }),
      el("td", { text: seconds(job), title: JSON.stringify(job.timings || {}) }),
      el("td", { class: "error", text: job.error ? `${job.error.code}: ${job.error.message}` : "" }),
      actions);
  }));
  $("#jobs-empty").hidden = jobs.length > 0;
}

async function refreshJobs() {
  clearTimeout(state.timer);
  if (!apiKey()) return;
  try {
    const page = await (await api("/v1/jobs?limit=100")).json();
    state.jobs = new Map(page.jobs.map((job) => [job.job_id, job]));
    renderJobs();
  } catch (error) {
    announce(error.message);
  }
  state.timer = setTimeout(refreshJobs, POLL_MS);
}

async function cancelJob(jobId) {
  try {
    await api(`/v1/jobs/${encodeURIComponent(jobId)}`, { method: "DELETE" });
    announce("Job cancelled.");
  } catch (error) {
    announce(error.message);
  }
  refreshJobs();
}

// --- preview -------------------------------------------------------------------------------------

function artifactUrl(jobId, path) {
  return `/v1/jobs/${encodeURIComponent(jobId)}/artifacts/${path.split("/").map(encodeURIComponent).join("/")}`;
}

async function fetchText(jobId, path) {
  return (await api(artifactUrl(jobId, path))).text();
}

function parseJsonLines(text) {
  return text.split("\n").filter((line) => line.trim()).map((line) => JSON.parse(line));
}

function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

function tableFrom(rows, className) {
  const [head, ...rest] = rows.length ? rows : [[]];
  return el("table", { class: className },
    el("thead", {}, el("tr", {}, head.map((cell) => el("th", { scope: "col", text: cell })))),
    el("tbody", {}, rest.map((r) => el("tr", {}, r.map((cell) => el("td", { text: cell }))))));
}

// Inline Markdown (code, bold, italics, links as text) built as DOM nodes: nothing is parsed as HTML.
function inline(text) {
  const nodes = [];
  const pattern = /(`[^`]+`|\*\*[^*]+\*\*|\*[^*\s][^*]*\*|_[^_\s][^_]*_)/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) nodes.push(text.slice(last, match.index));
    const token = match[0];
    if (token.startsWith("`")) nodes.push(el("code", { text: token.slice(1, -1) }));
    else if (token.startsWith("**")) nodes.push(el("strong", { text: token.slice(2, -2) }));
    else nodes.push(el("em", { text: token.slice(1, -1) }));
    last = match.index + token.length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

function renderMarkdown(source) {
  const root = el("div", { class: "markdown" });
  const lines = source.replace(/\r\n/g, "\n").split("\n");
  let i = 0;
  const isTableRow = (line) => /^\s*\|.*\|\s*$/.test(line);
  const cells = (line) => line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    if (line.startsWith("```")) {
      const code = [];
      for (i++; i < lines.length && !lines[i].startsWith("```"); i++) code.push(lines[i]);
      i++;
      root.append(el("pre", {}, el("code", { text: code.join("\n") })));
      continue;
    }
    const comment = /^<!--\s*(.*?)\s*-->$/.exec(line.trim());
    if (comment) {
      // Page markers (`<!-- page 2 -->`) become a quiet divider; nothing else is read as HTML.
      root.append(el("div", { class: "marker", text: comment[1] }));
      i++;
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      root.append(el(`h${Math.min(6, heading[1].length + 2)}`, {}, inline(heading[2])));
      i++;
      continue;
    }
    if (isTableRow(line)) {
      const rows = [];
      for (; i < lines.length && isTableRow(lines[i]); i++) {
        if (!/^\s*\|?\s*:?-{2,}/.test(lines[i])) rows.push(cells(lines[i]));
      }
      root.append(tableFrom(rows, "md-table"));
      continue;
    }
    if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const list = el(ordered ? "ol" : "ul");
      for (; i < lines.length && /^\s*([-*+]|\d+[.)])\s+/.test(lines[i]); i++) {
        list.append(el("li", {}, inline(lines[i].replace(/^\s*([-*+]|\d+[.)])\s+/, ""))));
      }
      root.append(list);
      continue;
    }
    if (line.startsWith(">")) {
      const quote = [];
      for (; i < lines.length && lines[i].startsWith(">"); i++) quote.push(lines[i].replace(/^>\s?/, ""));
      root.append(el("blockquote", {}, inline(quote.join(" "))));
      continue;
    }
    const para = [];
    for (; i < lines.length && lines[i].trim() && !/^(#|```|\s*\||<!--)/.test(lines[i]); i++) para.push(lines[i]);
    if (!para.length) { para.push(line); i++; }
    root.append(el("p", {}, inline(para.join(" "))));
  }
  return root;
}

async function renderTables(job) {
  const paths = job.artifacts.filter((p) => p.startsWith("tables/") && p.endsWith(".csv"));
  if (!paths.length) return el("p", { class: "hint", text: "No tables in this document." });
  const blocks = await Promise.all(paths.map(async (path) => el("figure", {},
    el("figcaption", { text: path }),
    el("div", { class: "scroll" }, tableFrom(parseCsv(await fetchText(job.job_id, path)), "csv")))));
  return el("div", {}, blocks);
}

async function renderChunks(job) {
  const chunks = parseJsonLines(await fetchText(job.job_id, "chunks.jsonl"));
  return el("div", {},
    el("p", { class: "hint", text: `${chunks.length} chunks` }),
    chunks.map((chunk, n) => {
      const where = [];
      if (Array.isArray(chunk.pages)) where.push(`pages ${chunk.pages[0]}–${chunk.pages[1]}`);
      if (chunk.sheet) where.push(`sheet ${chunk.sheet}`);
      if (Array.isArray(chunk.time_span)) where.push(`${chunk.time_span[0].toFixed(1)}–${chunk.time_span[1].toFixed(1)} s`);
      const heading = Array.isArray(chunk.heading_path) ? chunk.heading_path.join(" › ") : "";
      return el("article", { class: "chunk" },
        el("div", { class: "meta", text: [`#${chunk.index ?? n}`, heading, ...where].filter(Boolean).join(" · ") }),
        el("div", { text: chunk.text || "" }));
    }));
}

// --- elements (elements.jsonl, one element per line; its JSON Schema is /schemas/elements.json) ---

const MAX_ELEMENTS_SHOWN = 500;

function seconds1(value) { return typeof value === "number" ? value.toFixed(1) : "?"; }

// Where the element is: a slide, a page or a sheet (each null where the source has none).
function elementPlace(element) {
  if (element.slide != null) return `slide ${element.slide}`;
  if (element.page != null) return `page ${element.page}`;
  if (element.sheet != null) return `sheet ${element.sheet}`;
  return "";
}

// The type with its type-specific facts: heading level, list depth, role, code language,
// a transcript segment's time, speaker and language.
function elementFacts(element) {
  const facts = [element.type === "heading" && element.level ? `heading ${element.level}` : element.type];
  if (element.type === "list_item") {
    facts.push(element.ordered ? "numbered" : "bulleted");
    if (element.depth) facts.push(`depth ${element.depth}`);
  }
  if (element.role) facts.push(element.role);
  if (element.type === "code" && element.language) facts.push(element.language);
  if (element.type === "transcript_segment") {
    facts.push(`${seconds1(element.start)}–${seconds1(element.end)} s`);
    if (element.speaker) facts.push(element.speaker);
    if (element.language) facts.push(element.language);
  }
  const place = elementPlace(element);
  if (place) facts.push(place);
  return facts;
}

// A table element as DOM from its cells (spans, header rows): its `html` is never parsed.
function tableFromCells(table) {
  const rows = new Map();
  for (const cell of table.cells || []) {
    if (!rows.has(cell.row)) rows.set(cell.row, []);
    rows.get(cell.row).push(cell);
  }
  const head = el("thead"), body = el("tbody");
  for (const row of Array.from(rows.keys()).sort((a, b) => a - b)) {
    const cells = rows.get(row).sort((a, b) => a.col - b.col);
    const header = row < (table.header_rows || 0);
    (header ? head : body).append(el("tr", {}, cells.map((cell) => el(cell.header ? "th" : "td", {
      text: cell.text,
      scope: cell.header ? "col" : null,
      rowspan: cell.row_span > 1 ? String(cell.row_span) : null,
      colspan: cell.col_span > 1 ? String(cell.col_span) : null,
    }))));
  }
  return el("table", { class: "element-table" },
    table.title ? el("caption", { text: table.title }) : null,
    head.childElementCount ? head : null, body);
}

function elementBody(element) {
  const text = element.text || "";
  switch (element.type) {
    case "table":
      return el("div", { class: "scroll" },
        element.table ? tableFromCells(element.table) : el("pre", { text }),
        element.table && element.table.csv
          ? el("p", { class: "hint", text: `${element.table.n_rows} × ${element.table.n_cols}, also ${element.table.csv}` })
          : null);
    case "figure":
      return el("div", {},
        element.caption ? el("p", { class: "caption", text: element.caption }) : null,
        text ? el("p", { text }) : null,
        element.image ? el("p", { class: "hint", text: `image: ${element.image}` }) : null);
    case "code":
    case "formula":
      return el("pre", {}, el("code", { text }));
    case "email_header":
      return el("p", {}, el("strong", { text: `${element.name || "header"}: ` }), element.value ?? text);
    case "title":
    case "heading":
      return el("p", { class: "element-heading", text });
    default:
      return el("p", { text: text.length > 600 ? `${text.slice(0, 600)}…` : text });
  }
}

// Depth in the section tree (`parent_id` is the heading that holds the element).
function sectionDepths(elements) {
  const depth = new Map();
  for (const element of elements) {
    const parent = element.parent_id && depth.has(element.parent_id) ? depth.get(element.parent_id) + 1 : 0;
    depth.set(element.id, parent);
  }
  return depth;
}

// Element boxes (`bbox`: [x0, y0, x1, y1], origin top left) drawn on one frame per page or
// slide; all frames share the extent of every box (a document's pages share their size).
function geometryFigures(elements) {
  const frames = new Map();
  let width = 0, height = 0;
  for (const element of elements) {
    const b = Array.isArray(element.bbox) && element.bbox.length === 4 ? element.bbox.map(Number) : null;
    if (!b || b.some(Number.isNaN)) continue;
    const name = element.slide != null ? `Slide ${element.slide}` : element.page != null ? `Page ${element.page}` : "Document";
    if (!frames.has(name)) frames.set(name, []);
    frames.get(name).push({ b, element });
    width = Math.max(width, b[2]);
    height = Math.max(height, b[3]);
  }
  const svgNs = "http://www.w3.org/2000/svg";
  return Array.from(frames.entries()).map(([name, boxes]) => {
    const svg = document.createElementNS(svgNs, "svg");
    svg.setAttribute("viewBox", `0 0 ${Math.ceil(width) || 1} ${Math.ceil(height) || 1}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `${name}: ${boxes.length} element boxes`);
    for (const { b, element } of boxes) {
      const rect = document.createElementNS(svgNs, "rect");
      rect.setAttribute("x", b[0]); rect.setAttribute("y", b[1]);
      rect.setAttribute("width", Math.max(0, b[2] - b[0])); rect.setAttribute("height", Math.max(0, b[3] - b[1]));
      rect.setAttribute("class", `box-${element.type}`);
      rect.dataset.element = element.id;
      const title = document.createElementNS(svgNs, "title");
      title.textContent = `${element.type}: ${(element.text || "").slice(0, 80)}`;
      rect.append(title);
      svg.append(rect);
    }
    return el("figure", { class: "page", "data-frame": name }, svg, el("figcaption", { text: name }));
  });
}

function elementItem(element, depth) {
  const item = el("li", { class: "element", "data-type": element.type, "data-id": element.id },
    el("div", { class: "meta", text: `#${element.index} · ${elementFacts(element).join(" · ")}` }),
    elementBody(element));
  item.style.setProperty("--depth", String(Math.min(depth, 6)));
  return item;
}

async function renderElements(job, path) {
  const elements = parseJsonLines(await fetchText(job.job_id, path));
  const depths = sectionDepths(elements);
  const counts = new Map();
  for (const element of elements) counts.set(element.type, (counts.get(element.type) || 0) + 1);
  const shown = elements.slice(0, MAX_ELEMENTS_SHOWN);
  const list = el("ol", { class: "elements", "aria-label": "Elements in reading order" },
    shown.map((element) => elementItem(element, depths.get(element.id) || 0)));
  const filter = el("select", { id: "element-type", onchange: (event) => {
    for (const item of list.children) item.hidden = Boolean(event.target.value) && item.dataset.type !== event.target.value;
  } },
  el("option", { value: "", text: `all types (${elements.length})` }),
  Array.from(counts.entries()).map(([type, n]) => el("option", { value: type, text: `${type} (${n})` })));
  const figures = geometryFigures(shown);
  return el("div", {},
    el("p", { class: "hint" },
      `${elements.length} elements: ${Array.from(counts.entries()).map(([t, n]) => `${n} ${t}`).join(", ")}. `,
      el("a", { href: "/schemas/elements.json", text: "Element schema" })),
    el("div", { class: "row" }, el("label", { for: "element-type", text: "Show" }), filter),
    figures.length ? el("div", { class: "pages", "aria-label": "Element boxes" }, figures) : null,
    elements.length > shown.length
      ? el("p", { class: "hint", text: `The first ${shown.length} are shown; download ${path} for all.` }) : null,
    list);
}

async function renderMetadata(job) {
  const meta = JSON.parse(await fetchText(job.job_id, "metadata.json"));
  const warnings = meta.warnings || [];
  return el("div", {},
    warnings.length ? el("ul", { class: "warnings", "aria-label": "Warnings" },
      warnings.map((w) => el("li", { text: `warning: ${w}` }))) : null,
    el("pre", { class: "json", text: JSON.stringify(meta, null, 2) }));
}

function tabsFor(job) {
  const tabs = [];
  if (job.artifacts.includes("structured.md")) {
    tabs.push(["Markdown", async () => renderMarkdown(await fetchText(job.job_id, "structured.md"))]);
  }
  if (job.artifacts.some((p) => p.startsWith("tables/"))) tabs.push(["Tables", () => renderTables(job)]);
  if (job.artifacts.includes("plain.txt")) {
    tabs.push(["Text", async () => el("pre", { class: "plain", text: await fetchText(job.job_id, "plain.txt") })]);
  }
  if (job.artifacts.includes("chunks.jsonl")) tabs.push(["Chunks", () => renderChunks(job)]);
  const elements = job.artifacts.includes("elements.jsonl") ? "elements.jsonl"
    : job.artifacts.find((p) => /(^|\/)elements\.jsonl$/.test(p));
  if (elements) tabs.push(["Elements", () => renderElements(job, elements)]);
  if (job.artifacts.includes("metadata.json")) tabs.push(["Metadata", () => renderMetadata(job)]);
  return tabs;
}

async function showTab(button, render) {
  for (const tab of document.querySelectorAll("#tabs [role=tab]")) {
    tab.setAttribute("aria-selected", String(tab === button));
    tab.tabIndex = tab === button ? 0 : -1;
  }
  const turn = ++state.panelTurn;
  const panel = $("#panel");
  panel.setAttribute("aria-labelledby", button.id);
  panel.setAttribute("aria-busy", "true");
  let content;
  try {
    content = await render();
  } catch (error) {
    content = el("p", { class: "error", text: error.message });
  }
  if (turn !== state.panelTurn) return;
  panel.replaceChildren(content);
  panel.dataset.job = state.previewJob.job_id;
  panel.setAttribute("aria-busy", "false");
}

async function download(job, path) {
  try {
    const blob = await (await api(artifactUrl(job.job_id, path))).blob();
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: `${job.file_name.replace(/\.[^.]+$/, "")}-${path.replace(/\//g, "-")}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    announce(error.message);
  }
}

async function openPreview(jobId) {
  const turn = ++state.panelTurn;
  let job;
  try {
    job = await (await api(`/v1/jobs/${encodeURIComponent(jobId)}`)).json();
  } catch (error) {
    announce(error.message);
    return;
  }
  if (turn !== state.panelTurn) return;  // another preview or tab was asked for meanwhile
  state.previewJob = job;
  // The last job's panel must not show under this job's heading while the first tab loads.
  const panel = $("#panel");
  panel.replaceChildren();
  delete panel.dataset.job;
  panel.setAttribute("aria-busy", "true");
  $("#preview").hidden = false;
  $("#preview-heading").textContent = `Preview: ${job.file_name}`;
  const tabs = tabsFor(job);
  const buttons = tabs.map(([name, render], n) => el("button", {
    type: "button", role: "tab", id: `tab-${name.toLowerCase()}`, text: name,
    "aria-controls": "panel", "aria-selected": "false", tabindex: n === 0 ? "0" : "-1",
    onclick: (event) => showTab(event.currentTarget, render),
  }));
  const list = $("#tabs");
  list.replaceChildren(...buttons);
  list.onkeydown = (event) => {
    const index = buttons.indexOf(document.activeElement);
    if (index < 0 || !["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
    event.preventDefault();
    const next = event.key === "Home" ? 0 : event.key === "End" ? buttons.length - 1
      : (index + (event.key === "ArrowRight" ? 1 : -1) + buttons.length) % buttons.length;
    buttons[next].focus();
    buttons[next].click();
  };
  $("#downloads").replaceChildren(...job.artifacts.map((path) => el("li", {},
    el("button", { type: "button", text: path, "aria-label": `Download ${path}`, onclick: () => download(job, path) }))));
  $("#preview-heading").focus();
  if (buttons.length) await showTab(buttons[0], tabs[0][1]);
  else panel.setAttribute("aria-busy", "false");
}

function setupPreview() {
  $("#close-preview").addEventListener("click", () => {
    $("#preview").hidden = true;
    state.panelTurn += 1;  // a render still on its way is not for this (closed) preview
    state.previewJob = null;
    $("#jobs-heading").focus();
  });
  $("#refresh").addEventListener("click", refreshJobs);
}

document.addEventListener("DOMContentLoaded", () => {
  // The options form is never sent by itself: each upload carries its fields.
  $("#options").addEventListener("submit", (event) => event.preventDefault());
  setupKey();
  setupDrop();
  setupPreview();
  renderJobs();
  refreshJobs();
});
