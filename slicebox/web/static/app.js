// Slicebox in the browser: a small single-page app over /api (no build step).
import * as api from "./api.js";
import { h, clear, field, table, formatTime } from "./dom.js";
import { viewerView } from "./viewer.js";
import { adminViews } from "./admin.js";

const main = document.getElementById("main");
const state = { user: null, selection: new Map(), timers: [], options: null };
export const app = { state, notify, guard, navigate, main, isAdmin, schedule, selectionBar };

// -- messages ------------------------------------------------------------------------
export function notify(text, kind = "info") {
  const box = document.getElementById("messages");
  const item = h("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : null },
    h("span", {}, text),
    h("button", { type: "button", class: "link", "aria-label": "Dismiss message",
      onclick: () => item.remove() }, "×"));
  box.appendChild(item);
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
}

// Run an async action; an API error becomes a readable message, never a blank page.
export async function guard(action) {
  try {
    return await action();
  } catch (exc) {
    if (exc instanceof api.ApiError && exc.status === 401 && state.user) {
      state.user = null;
      notify(exc.message, "error");
      navigate("#/login");
      return undefined;
    }
    notify(exc && exc.message ? exc.message : String(exc), "error");
    return undefined;
  }
}

function isAdmin() {
  return state.user && (state.user.role === "ADMINISTRATOR" || state.user.role === "SUPERUSER");
}

function schedule(fn, ms) {
  const id = setInterval(fn, ms);
  state.timers.push(id);
  return id;
}

export function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

const v = (x) => (x && typeof x === "object" && "value" in x ? x.value : x ?? "");

// -- routing --------------------------------------------------------------------------
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, q] = raw.split("?");
  const parts = path.split("/").filter(Boolean);
  const params = Object.fromEntries(new URLSearchParams(q || ""));
  return { parts, params };
}

function setHashParams(params) {
  const { parts } = parseHash();
  const q = new URLSearchParams();
  for (const [k, val] of Object.entries(params)) if (val !== "" && val !== undefined && val !== null) q.set(k, val);
  const s = q.toString();
  location.hash = "#/" + parts.join("/") + (s ? "?" + s : "");
}

const NAV = [
  { hash: "#/patients", label: "Browse" },
  { hash: "#/flatseries", label: "Series" },
  { hash: "#/query", label: "Query" },
  { hash: "#/upload", label: "Upload" },
  { hash: "#/keys", label: "Anonymization keys" },
  { hash: "#/transactions", label: "Transfers" },
  { hash: "#/admin", label: "Admin", admin: true },
];

function renderNav() {
  const nav = clear(document.getElementById("nav"));
  const { parts } = parseHash();
  for (const item of NAV) {
    if (item.admin && !isAdmin()) continue;
    const current = "#/" + (parts[0] || "patients") === item.hash ||
      (item.hash === "#/patients" && ["patient", "study", "series"].includes(parts[0]));
    nav.appendChild(h("li", {}, h("a", { href: item.hash, "aria-current": current ? "page" : null }, item.label)));
  }
  document.getElementById("who").textContent = `${state.user.user} (${state.user.role})`;
}

async function render() {
  for (const id of state.timers) clearInterval(id);
  state.timers = [];
  const { parts, params } = parseHash();
  if (!state.user) {
    state.user = await api.get("/users/current").catch(() => null);
  }
  const top = document.getElementById("top");
  if (!state.user) {
    top.hidden = true;
    return loginView();
  }
  top.hidden = false;
  renderNav();
  clear(main);
  const route = parts[0] || "patients";
  const views = {
    login: () => navigate("#/patients"),
    patients: () => patientsView(params),
    patient: () => studiesView(Number(parts[1]), params),
    study: () => seriesView(Number(parts[1]), params),
    series: () => imagesView(Number(parts[1]), params),
    flatseries: () => flatSeriesView(params),
    query: () => queryView(),
    image: () => viewerView(app, Number(parts[1])),
    upload: () => uploadView(),
    keys: () => keysView(params),
    key: () => keyView(Number(parts[1])),
    transactions: () => transactionsView(),
    admin: () => adminViews(app, parts[1] || "boxes", params),
  };
  const view = views[route];
  if (!view) {
    main.appendChild(h("h1", {}, "Not found"));
    main.appendChild(h("p", {}, "There is no such page. ", h("a", { href: "#/patients" }, "Browse the images.")));
    return;
  }
  await guard(view);
}

// -- login ----------------------------------------------------------------------------
function loginView() {
  clear(main);
  const user = h("input", { name: "user", autocomplete: "username", required: true });
  const pass = h("input", { name: "pass", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "login card", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Log in to Slicebox"),
    field("User name", user),
    field("Password", pass),
    h("button", { type: "submit" }, "Log in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await guard(async () => {
      await api.post("/users/login", { user: user.value, pass: pass.value });
      state.user = await api.get("/users/current");
      if (!location.hash || location.hash.startsWith("#/login")) location.hash = "#/patients";
      else render();
    });
  });
  main.appendChild(form);
  user.focus();
}

document.getElementById("logout").addEventListener("click", async () => {
  await api.post("/users/logout").catch(() => null);
  state.user = null;
  state.selection.clear();
  navigate("#/login");
});

// -- selection --------------------------------------------------------------------------
function selectionKey(level, id) { return `${level}:${id}`; }

function selectBox(level, id, label) {
  const key = selectionKey(level, id);
  return h("input", {
    type: "checkbox", "aria-label": `Select ${label}`, checked: state.selection.has(key),
    onchange: (e) => {
      if (e.target.checked) state.selection.set(key, { level, id, label });
      else state.selection.delete(key);
      updateSelectionBar();
    },
  });
}

async function selectedImageIds() {
  const ids = new Set();
  for (const { level, id } of state.selection.values()) {
    let images = [];
    if (level === "image") images = [{ id }];
    else if (level === "patient") images = await api.get(`/metadata/patients/${id}/images`);
    else if (level === "study") images = await api.get(`/metadata/studies/${id}/images`);
    else if (level === "series") images = await api.get(`/metadata/images${api.query({ seriesid: id, count: 10000 })}`);
    for (const img of images) ids.add(img.id);
  }
  return [...ids];
}

function selectionBar() {
  const bar = h("div", { class: "selection", id: "selection-bar", role: "region", "aria-label": "Selection" });
  fillSelectionBar(bar);
  return bar;
}

function updateSelectionBar() {
  const bar = document.getElementById("selection-bar");
  if (bar) fillSelectionBar(bar);
}

function fillSelectionBar(bar) {
  clear(bar);
  const n = state.selection.size;
  bar.hidden = n === 0;
  if (n === 0) return;
  bar.appendChild(h("span", { class: "count" }, `${n} selected`));
  bar.appendChild(h("button", { type: "button", onclick: () => guard(exportSelection) }, "Export as zip"));
  bar.appendChild(h("button", { type: "button", onclick: () => guard(() => anonymizeDialog()) }, "Anonymize…"));
  bar.appendChild(h("button", { type: "button", onclick: () => guard(() => sendDialog()) }, "Send to box…"));
  bar.appendChild(h("button", { type: "button", class: "secondary",
    onclick: () => { state.selection.clear(); render(); } }, "Clear selection"));
}

async function exportSelection() {
  const ids = await selectedImageIds();
  if (!ids.length) return notify("The selection holds no images.", "error");
  const result = await api.post("/images/export", ids);
  if (!result || result.value === undefined) return notify("None of the selected images exist any more.", "error");
  const link = h("a", { href: `/api/images/export${api.query({ id: result.value })}`, download: "slicebox-export.zip" });
  document.body.appendChild(link);
  link.click();
  link.remove();
  notify(`Exporting ${ids.length} image(s) as a zip file.`);
}

async function profileOptions() {
  if (!state.options) state.options = await api.get("/anonymization/options");
  return state.options;
}

function optionChecks(options, prefix) {
  return h("fieldset", { class: "options" }, h("legend", {}, "Profile options (the basic profile always applies)"),
    options.filter((o) => o.name !== "BASIC_PROFILE").map((o) => {
      const id = `${prefix}-${o.name}`;
      return h("div", { class: "option" },
        h("input", { type: "checkbox", id, value: o.name, name: "option" }),
        h("label", { for: id }, h("strong", {}, o.title || o.name), " ", h("span", { class: "hint" }, o.description || "")));
    }));
}

function chosenOptions(form) {
  return [...form.querySelectorAll("input[name=option]:checked")].map((i) => ({ name: i.value }));
}

function dialog(title, content, onSubmit, submitLabel) {
  const dlg = h("dialog", { "aria-labelledby": "dlg-title" });
  const form = h("form", { method: "dialog" },
    h("h2", { id: "dlg-title" }, title), content,
    h("div", { class: "actions" },
      h("button", { type: "submit", value: "ok" }, submitLabel),
      h("button", { type: "button", class: "secondary", onclick: () => dlg.close() }, "Cancel")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const ok = await guard(() => onSubmit(form));
    if (ok !== undefined) dlg.close();
  });
  dlg.appendChild(form);
  dlg.addEventListener("close", () => dlg.remove());
  document.body.appendChild(dlg);
  dlg.showModal();
  return dlg;
}

async function anonymizeDialog() {
  const options = await profileOptions();
  const name = h("input", { name: "anonName", placeholder: "e.g. Project^001" });
  const pid = h("input", { name: "anonId", placeholder: "e.g. P001" });
  dialog("Anonymize the selection in place", [
    h("p", {}, "The selected images are replaced by anonymized versions; the anonymization keys keep the real values for re-identification."),
    optionChecks(options, "anon"),
    field("Anonymous patient name (optional)", name),
    field("Anonymous patient ID (optional)", pid),
  ], async (form) => {
    const ids = await selectedImageIds();
    const tagValues = customValues(name.value, pid.value);
    const result = await api.post("/anonymization/anonymize", {
      profile: { options: chosenOptions(form) },
      imageTagValuesSet: ids.map((imageId) => ({ imageId, tagValues })),
    });
    state.selection.clear();
    notify(`Anonymized ${result.length} image(s).`);
    navigate("#/keys");
    return true;
  }, "Anonymize");
}

function customValues(name, pid) {
  const values = [];
  if (name.trim()) values.push({ tagPath: { tag: 0x00100010 }, value: name.trim() });
  if (pid.trim()) values.push({ tagPath: { tag: 0x00100020 }, value: pid.trim() });
  return values;
}

async function sendDialog() {
  const [boxes, options] = await Promise.all([api.get("/boxes"), profileOptions()]);
  if (!boxes.length) return notify("No box connections yet: an administrator adds them under Admin → Boxes.", "error");
  const select = h("select", { name: "box" }, boxes.map((b) => h("option", { value: b.id }, `${b.name}${b.online ? " (online)" : ""}`)));
  const name = h("input", { name: "anonName", placeholder: "e.g. Project^001" });
  dialog("Send the selection to a box", [
    h("p", {}, "Images leave anonymized with the chosen profile and come back re-identified."),
    field("Box", select), optionChecks(options, "send"), field("Anonymous patient name (optional)", name),
  ], async (form) => {
    const ids = await selectedImageIds();
    const tagValues = customValues(name.value, "");
    await api.post(`/boxes/${select.value}/send`, {
      profile: { options: chosenOptions(form) },
      imageTagValuesSet: ids.map((imageId) => ({ imageId, tagValues })),
    });
    state.selection.clear();
    notify(`Queued ${ids.length} image(s) for sending.`);
    navigate("#/transactions");
    return true;
  }, "Send");
}

// -- lists with paging, order and filters ------------------------------------------------
function pager(params, count, got) {
  const start = Number(params.startindex || 0);
  return h("div", { class: "pager" },
    h("button", { type: "button", class: "secondary", disabled: start === 0,
      onclick: () => setHashParams({ ...params, startindex: Math.max(0, start - count) }) }, "← Previous"),
    h("span", {}, got ? `${start + 1}–${start + got}` : "no rows"),
    h("button", { type: "button", class: "secondary", disabled: got < count,
      onclick: () => setHashParams({ ...params, startindex: start + count }) }, "Next →"));
}

async function filterControls(params, orderFields, { seriesFilters = true } = {}) {
  const filter = h("input", { type: "search", name: "filter", value: params.filter || "", placeholder: "Substring" });
  const orderby = h("select", { name: "orderby" }, h("option", { value: "" }, "(default)"),
    orderFields.map(([key, label]) => h("option", { value: key, selected: params.orderby === key }, label)));
  const ascending = h("select", { name: "orderascending" },
    h("option", { value: "true", selected: params.orderascending !== "false" }, "ascending"),
    h("option", { value: "false", selected: params.orderascending === "false" }, "descending"));
  const count = h("select", { name: "count" }, [20, 50, 100, 500].map((n) =>
    h("option", { value: n, selected: Number(params.count || 20) === n }, String(n))));
  const controls = [field("Filter", filter), field("Order by", orderby), field("Order", ascending), field("Rows", count)];
  let sources = null;
  let types = null;
  if (seriesFilters) {
    const [srcList, typeList] = await Promise.all([
      api.get("/sources").catch(() => []),
      api.get("/seriestypes").catch(() => []),
    ]);
    sources = h("select", { name: "sources" }, h("option", { value: "" }, "(all sources)"),
      srcList.map((s) => {
        const val = `${s.sourceType}:${s.sourceId}`;
        return h("option", { value: val, selected: params.sources === val }, `${s.sourceName} (${s.sourceType})`);
      }));
    controls.push(field("Source", sources));
    if (Array.isArray(typeList) && typeList.length) {
      types = h("select", { name: "seriestypes" }, h("option", { value: "" }, "(all series types)"),
        typeList.map((t) => h("option", { value: t.id, selected: String(params.seriestypes) === String(t.id) }, t.name)));
      controls.push(field("Series type", types));
    }
  }
  const form = h("form", { class: "filters", role: "search" }, controls,
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    setHashParams({ ...params, filter: filter.value, orderby: orderby.value, orderascending: ascending.value,
      count: count.value, sources: sources ? sources.value : undefined, seriestypes: types ? types.value : undefined,
      startindex: 0 });
  });
  return form;
}

function listParams(params, extra) {
  return api.query({ startindex: params.startindex || 0, count: params.count || 20, orderby: params.orderby,
    orderascending: params.orderascending, filter: params.filter, sources: params.sources,
    seriestypes: params.seriestypes, ...extra });
}

function breadcrumbs(items) {
  return h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, h("ol", {}, items.map(([label, href], i) =>
    h("li", {}, href && i < items.length - 1 ? h("a", { href }, label) : h("span", { "aria-current": "page" }, label)))));
}

async function patientsView(params) {
  const count = Number(params.count || 20);
  const [rows, controls] = await Promise.all([
    api.get("/metadata/patients" + listParams(params)),
    filterControls(params, [["patientName", "Name"], ["patientID", "Patient ID"], ["patientBirthDate", "Birth date"], ["patientSex", "Sex"]]),
  ]);
  main.append(breadcrumbs([["Patients"]]), h("h1", {}, "Patients"), controls, selectionBar(),
    table([
      { header: "Select", cell: (p) => selectBox("patient", p.id, v(p.patientName) || `patient ${p.id}`) },
      { header: "Name", cell: (p) => h("a", { href: `#/patient/${p.id}` }, v(p.patientName) || "(no name)") },
      { header: "Patient ID", cell: (p) => v(p.patientID) },
      { header: "Birth date", cell: (p) => v(p.patientBirthDate) },
      { header: "Sex", cell: (p) => v(p.patientSex) },
    ], rows, { caption: "Patients on this box" }),
    pager(params, count, rows.length));
}

async function studiesView(patientId, params) {
  const count = Number(params.count || 20);
  const [patient, rows, controls] = await Promise.all([
    api.get(`/metadata/patients/${patientId}`),
    api.get("/metadata/studies" + listParams(params, { patientid: patientId })),
    filterControls(params, [["studyDate", "Date"], ["studyDescription", "Description"], ["studyID", "Study ID"], ["accessionNumber", "Accession number"]]),
  ]);
  const name = v(patient.patientName) || "(no name)";
  main.append(breadcrumbs([["Patients", "#/patients"], [name]]), h("h1", {}, `Studies of ${name}`), controls, selectionBar(),
    table([
      { header: "Select", cell: (s) => selectBox("study", s.id, v(s.studyDescription) || `study ${s.id}`) },
      { header: "Date", cell: (s) => h("a", { href: `#/study/${s.id}` }, v(s.studyDate) || "(no date)") },
      { header: "Description", cell: (s) => v(s.studyDescription) },
      { header: "Study ID", cell: (s) => v(s.studyID) },
      { header: "Accession", cell: (s) => v(s.accessionNumber) },
      { header: "Age", cell: (s) => v(s.patientAge) },
    ], rows, { caption: "Studies" }),
    pager(params, count, rows.length));
}

async function seriesView(studyId, params) {
  const count = Number(params.count || 20);
  const study = await api.get(`/metadata/studies/${studyId}`);
  const [patient, rows, controls] = await Promise.all([
    api.get(`/metadata/patients/${study.patientId}`),
    api.get("/metadata/series" + listParams(params, { studyid: studyId })),
    filterControls(params, [["seriesDate", "Date"], ["modality", "Modality"], ["seriesDescription", "Description"], ["protocolName", "Protocol"]]),
  ]);
  const name = v(patient.patientName) || "(no name)";
  const title = v(study.studyDescription) || v(study.studyDate) || `study ${studyId}`;
  main.append(breadcrumbs([["Patients", "#/patients"], [name, `#/patient/${patient.id}`], [title]]),
    h("h1", {}, `Series of ${title}`), controls, selectionBar(),
    table([
      { header: "Select", cell: (s) => selectBox("series", s.id, v(s.seriesDescription) || `series ${s.id}`) },
      { header: "Modality", cell: (s) => h("a", { href: `#/series/${s.id}` }, v(s.modality) || "(series)") },
      { header: "Description", cell: (s) => v(s.seriesDescription) },
      { header: "Date", cell: (s) => v(s.seriesDate) },
      { header: "Protocol", cell: (s) => v(s.protocolName) },
      { header: "Body part", cell: (s) => v(s.bodyPartExamined) },
    ], rows, { caption: "Series" }),
    pager(params, count, rows.length));
}

async function imagesView(seriesId, params) {
  const count = Number(params.count || 50);
  const series = await api.get(`/metadata/series/${seriesId}`);
  const study = await api.get(`/metadata/studies/${series.studyId}`);
  const [patient, rows, source] = await Promise.all([
    api.get(`/metadata/patients/${study.patientId}`),
    api.get("/metadata/images" + api.query({ seriesid: seriesId, startindex: params.startindex || 0, count })),
    api.get(`/metadata/series/${seriesId}/source`).catch(() => null),
  ]);
  const name = v(patient.patientName) || "(no name)";
  const studyTitle = v(study.studyDescription) || v(study.studyDate) || `study ${study.id}`;
  const title = v(series.seriesDescription) || v(series.modality) || `series ${seriesId}`;
  main.append(breadcrumbs([["Patients", "#/patients"], [name, `#/patient/${patient.id}`], [studyTitle, `#/study/${study.id}`], [title]]),
    h("h1", {}, `Images of ${title}`),
    source ? h("p", { class: "hint" }, `Source: ${source.sourceName} (${source.sourceType})`) : null,
    selectionBar(),
    table([
      { header: "Select", cell: (i) => selectBox("image", i.id, `image ${v(i.instanceNumber) || i.id}`) },
      { header: "Instance", cell: (i) => h("a", { href: `#/image/${i.id}` }, v(i.instanceNumber) || `image ${i.id}`) },
      { header: "Image type", cell: (i) => v(i.imageType) },
      { header: "SOP Instance UID", cell: (i) => h("code", {}, v(i.sopInstanceUID)) },
      { header: "", cell: (i) => h("a", { href: `/api/images/${i.id}`, download: `image-${i.id}.dcm` }, "Download") },
    ], rows, { caption: "Images" }),
    pager(params, count, rows.length));
}

async function flatSeriesView(params) {
  const count = Number(params.count || 20);
  const [rows, controls] = await Promise.all([
    api.get("/metadata/flatseries" + listParams(params)),
    filterControls(params, [["patientName", "Patient name"], ["studyDate", "Study date"], ["modality", "Modality"], ["seriesDescription", "Series description"]]),
  ]);
  main.append(h("h1", {}, "All series"), controls, selectionBar(),
    table([
      { header: "Select", cell: (f) => selectBox("series", f.id, v(f.series.seriesDescription) || `series ${f.id}`) },
      { header: "Patient", cell: (f) => h("a", { href: `#/patient/${f.patient.id}` }, v(f.patient.patientName) || "(no name)") },
      { header: "Study date", cell: (f) => v(f.study.studyDate) },
      { header: "Modality", cell: (f) => v(f.series.modality) },
      { header: "Series", cell: (f) => h("a", { href: `#/series/${f.id}` }, v(f.series.seriesDescription) || `series ${f.id}`) },
    ], rows, { caption: "Series with their study and patient" }),
    pager(params, count, rows.length));
}

const QUERY_PROPERTIES = {
  patients: ["patientName", "patientID", "patientBirthDate", "patientSex"],
  studies: ["studyDescription", "studyDate", "studyID", "accessionNumber", "studyInstanceUID", "patientAge"],
  series: ["modality", "seriesDescription", "seriesDate", "protocolName", "bodyPartExamined", "manufacturer", "stationName", "seriesInstanceUID"],
  images: ["sopInstanceUID", "imageType", "instanceNumber"],
};

function queryView() {
  const level = h("select", { name: "level" }, Object.keys(QUERY_PROPERTIES).map((l) => h("option", { value: l }, l)));
  const rowsBox = h("div", { class: "query-rows" });
  const results = h("div", { class: "results", "aria-live": "polite" });
  const addRow = () => {
    const prop = h("select", { name: "property" }, QUERY_PROPERTIES[level.value].map((p) => h("option", { value: p }, p)));
    const op = h("select", { name: "operator" }, h("option", { value: "like" }, "contains"), h("option", { value: "=" }, "equals"));
    const val = h("input", { name: "value" });
    const row = h("div", { class: "query-row" }, field("Property", prop), field("Operator", op), field("Value", val),
      h("button", { type: "button", class: "secondary", onclick: () => row.remove(), "aria-label": "Remove condition" }, "Remove"));
    rowsBox.appendChild(row);
  };
  level.addEventListener("change", () => { clear(rowsBox); addRow(); });
  addRow();
  const form = h("form", { class: "card" }, field("Level", level), rowsBox,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: addRow }, "Add condition"),
      h("button", { type: "submit" }, "Search")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    guard(async () => {
      const queryProperties = [...rowsBox.querySelectorAll(".query-row")].map((row) => ({
        propertyName: row.querySelector("[name=property]").value,
        operator: row.querySelector("[name=operator]").value,
        propertyValue: row.querySelector("[name=value]").value,
      }));
      const found = await api.post(`/metadata/${level.value}/query`, { startIndex: 0, count: 200, queryProperties });
      clear(results).appendChild(queryResults(level.value, found));
    });
  });
  main.append(h("h1", {}, "Query"), form, selectionBar(), results);
}

function queryResults(level, rows) {
  const link = {
    patients: (r) => h("a", { href: `#/patient/${r.id}` }, v(r.patientName) || `patient ${r.id}`),
    studies: (r) => h("a", { href: `#/study/${r.id}` }, v(r.studyDescription) || v(r.studyDate) || `study ${r.id}`),
    series: (r) => h("a", { href: `#/series/${r.id}` }, v(r.seriesDescription) || v(r.modality) || `series ${r.id}`),
    images: (r) => h("a", { href: `#/image/${r.id}` }, `image ${v(r.instanceNumber) || r.id}`),
  }[level];
  const sel = { patients: "patient", studies: "study", series: "series", images: "image" }[level];
  return table([
    { header: "Select", cell: (r) => selectBox(sel, r.id, `${sel} ${r.id}`) },
    { header: "Result", cell: link },
  ], rows, { caption: `${rows.length} ${level} found` });
}

// -- upload ---------------------------------------------------------------------------------
function uploadView() {
  const counts = { added: 0, duplicate: 0, rejected: 0 };
  const summary = h("p", { class: "counts", "aria-live": "polite" });
  const showCounts = (session) => {
    const s = session
      ? `Import session "${session.name}": ${session.filesAdded} added, ${session.filesImported - session.filesAdded} duplicate, ${session.filesRejected} rejected`
      : `${counts.added} added, ${counts.duplicate} duplicate, ${counts.rejected} rejected`;
    summary.textContent = s;
  };
  showCounts(null);
  const list = h("ul", { class: "uploads" });
  const files = h("input", { type: "file", multiple: true, id: "upload-files" });
  const folder = h("input", { type: "file", multiple: true, webkitdirectory: true, id: "upload-folder" });
  const zone = h("div", { class: "dropzone", tabindex: "0", role: "button",
    "aria-label": "Drop DICOM files or folders here, or press Enter to choose files" },
    "Drop DICOM files or folders here");
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); files.click(); } });
  zone.addEventListener("click", () => files.click());
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const dropped = await filesFromDrop(e.dataTransfer);
    start(dropped);
  });
  files.addEventListener("change", () => start([...files.files]));
  folder.addEventListener("change", () => start([...folder.files]));

  let session = null;
  async function ensureSession() {
    if (session !== null) return session;
    const name = `Browser upload ${new Date().toISOString().replace("T", " ").slice(0, 19)}`;
    session = await api.post("/import/sessions", { name }).catch(() => false);
    return session;
  }

  async function start(chosen) {
    if (!chosen.length) return;
    const s = await ensureSession();
    const path = s ? `/import/sessions/${s.id}/images` : "/images";
    const queue = [...chosen];
    const worker = async () => {
      while (queue.length) {
        const file = queue.shift();
        const bar = h("progress", { max: "1", value: "0", "aria-label": `Upload of ${file.name}` });
        const status = h("span", { class: "status" }, "uploading");
        list.appendChild(h("li", {}, h("span", { class: "name" }, file.webkitRelativePath || file.name), bar, status));
        try {
          const result = await api.upload(path, file, (f) => { bar.value = f; });
          bar.value = 1;
          if (result.status === 201) { counts.added += 1; status.textContent = "added"; }
          else if (result.status === 200) { counts.duplicate += 1; status.textContent = "already stored"; }
          else {
            counts.rejected += 1;
            status.textContent = `rejected: ${(result.body && result.body.error) || result.status}`;
            status.classList.add("bad");
          }
        } catch (exc) {
          counts.rejected += 1;
          status.textContent = exc.message;
          status.classList.add("bad");
        }
        showCounts(null);
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    if (s) {
      const fresh = await api.get(`/import/sessions/${s.id}`).catch(() => null);
      showCounts(fresh);
    }
    notify(`Upload finished: ${counts.added} added, ${counts.duplicate} duplicate, ${counts.rejected} rejected.`);
  }

  main.append(h("h1", {}, "Upload"), zone,
    h("div", { class: "pickers" }, field("Choose files", files), field("Choose a folder", folder)),
    summary, list);
}

async function filesFromDrop(transfer) {
  const out = [];
  const entries = [...transfer.items].map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null)).filter(Boolean);
  if (!entries.length) return [...transfer.files];
  const walk = async (entry) => {
    if (entry.isFile) out.push(await new Promise((res, rej) => entry.file(res, rej)));
    else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
  };
  for (const entry of entries) await walk(entry);
  return out;
}

// -- anonymization keys ------------------------------------------------------------------------
async function keysView(params) {
  const count = Number(params.count || 20);
  const rows = await api.get("/anonymization/keys" + api.query({ startindex: params.startindex || 0, count,
    filter: params.filter, orderby: params.orderby || "created", orderascending: params.orderascending || "false" }));
  const filter = h("input", { type: "search", value: params.filter || "", name: "filter" });
  const form = h("form", { class: "filters", role: "search" }, field("Filter", filter), h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => { e.preventDefault(); setHashParams({ ...params, filter: filter.value, startindex: 0 }); });
  main.append(h("h1", {}, "Anonymization keys"),
    h("p", {}, "Each anonymization records the real and anonymous identities; that is what re-identifies images when they come back."),
    form,
    isAdmin() ? h("p", {}, h("a", { href: "/api/anonymization/keys/export/csv", download: "anonymization-keys.csv" }, "Download all keys as CSV")) : null,
    table([
      { header: "Created", cell: (k) => h("a", { href: `#/key/${k.id}` }, formatTime(k.created)) },
      { header: "Patient", cell: (k) => k.patientName },
      { header: "Anonymous patient", cell: (k) => k.anonPatientName },
      { header: "Anonymous ID", cell: (k) => k.anonPatientID },
      { header: "Image", cell: (k) => (k.imageId ? h("a", { href: `#/image/${k.imageId}` }, String(k.imageId)) : "") },
    ], rows, { caption: "Keys, newest first" }),
    pager(params, count, rows.length));
}

async function keyView(keyId) {
  const [key, values] = await Promise.all([api.get(`/anonymization/keys/${keyId}`), api.get(`/anonymization/keys/${keyId}/keyvalues`)]);
  main.append(breadcrumbs([["Anonymization keys", "#/keys"], [`Key ${keyId}`]]), h("h1", {}, `Anonymization key ${keyId}`),
    h("dl", { class: "facts" },
      ["patientName", "anonPatientName", "patientID", "anonPatientID", "studyInstanceUID", "anonStudyInstanceUID",
        "seriesInstanceUID", "anonSeriesInstanceUID", "sopInstanceUID", "anonSOPInstanceUID"].map((f) =>
        [h("dt", {}, f), h("dd", {}, String(key[f] ?? ""))])),
    table([
      { header: "Tag path", cell: (kv) => h("code", {}, kv.tagPath ? JSON.stringify(kv.tagPath) : "") },
      { header: "Value", cell: (kv) => kv.value },
      { header: "Anonymized value", cell: (kv) => kv.anonymizedValue },
    ], values, { caption: "Key values" }),
    h("button", { type: "button", class: "danger", onclick: () => guard(async () => {
      if (!confirm("Delete this key? Images anonymized with it can then no longer be re-identified.")) return;
      await api.del(`/anonymization/keys/${keyId}`);
      notify("Key deleted.");
      navigate("#/keys");
    }) }, "Delete key"));
}

// -- transfers --------------------------------------------------------------------------------
async function transactionsView() {
  const out = h("div", {});
  const inc = h("div", {});
  const progress = (done, total) => h("progress", { max: String(total || 1), value: String(done || 0),
    "aria-label": `${done} of ${total}` });
  const refresh = async () => {
    const [outgoing, incoming] = await Promise.all([api.get("/boxes/outgoing?count=50"), api.get("/boxes/incoming?count=50")]);
    clear(out).appendChild(table([
      { header: "Box", cell: (t) => t.boxName },
      { header: "Status", cell: (t) => h("span", { class: `status-${String(t.status).toLowerCase()}` }, t.status) },
      { header: "Progress", cell: (t) => [progress(t.sentImageCount, t.totalImageCount), ` ${t.sentImageCount} / ${t.totalImageCount}`] },
      { header: "Updated", cell: (t) => formatTime(t.updated) },
      { header: "", cell: (t) => h("button", { type: "button", class: "secondary",
        onclick: () => guard(async () => { await api.del(`/boxes/outgoing/${t.id}`); refresh(); }) }, "Delete") },
    ], outgoing, { caption: "Outgoing" }));
    clear(inc).appendChild(table([
      { header: "Box", cell: (t) => t.boxName },
      { header: "Status", cell: (t) => h("span", { class: `status-${String(t.status).toLowerCase()}` }, t.status) },
      { header: "Progress", cell: (t) => [progress(t.receivedImageCount, t.totalImageCount), ` ${t.receivedImageCount} / ${t.totalImageCount}`] },
      { header: "Updated", cell: (t) => formatTime(t.updated) },
    ], incoming, { caption: "Incoming" }));
  };
  await refresh();
  main.append(h("h1", {}, "Transfers"), h("p", { class: "hint" }, "Updates every two seconds."), out, inc);
  schedule(() => refresh().catch(() => null), 2000);
}

window.addEventListener("hashchange", render);
render();
