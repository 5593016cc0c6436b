// Administration pages: boxes, users, the log, and the PACS / automation resources.
import * as api from "./api.js";
import { h, clear, field, table, formatTime } from "./dom.js";

const TABS = [
  ["boxes", "Boxes"], ["users", "Users"], ["log", "Log"], ["scps", "DICOM listeners"], ["scus", "DICOM destinations"],
  ["watches", "Directory watches"], ["forwarding", "Forwarding"], ["filters", "Tag filters"], ["seriestypes", "Series types"],
];

export async function adminViews(app, tab, params) {
  const { main } = app;
  if (!app.isAdmin()) {
    main.append(h("h1", {}, "Administration"), h("p", {}, "These pages are for administrators."));
    return;
  }
  main.append(h("h1", {}, "Administration"),
    h("nav", { "aria-label": "Administration", class: "tabs" }, h("ul", {}, TABS.map(([key, label]) =>
      h("li", {}, h("a", { href: `#/admin/${key}`, "aria-current": key === tab ? "page" : null }, label))))));
  const body = h("section", { class: "admin" });
  main.appendChild(body);
  const views = { boxes: boxesView, users: usersView, log: logView };
  if (views[tab]) return views[tab](app, body, params);
  const resource = RESOURCES[tab];
  if (!resource) return body.appendChild(h("p", {}, "Unknown page."));
  return resourceView(app, body, resource);
}

async function boxesView(app, body) {
  const boxes = await api.get("/boxes");
  const refresh = () => app.navigate("#/admin/boxes");
  const name = h("input", { name: "name", required: true });
  const create = h("form", { class: "card" }, h("h2", {}, "Create a connection"),
    h("p", { class: "hint" }, "For a box that will reach this one: give its administrator the URL shown afterwards."),
    field("Name of the other box", name), h("button", { type: "submit" }, "Create connection"));
  create.addEventListener("submit", (e) => { e.preventDefault(); app.guard(async () => {
    const box = await api.post("/boxes/createconnection", { name: name.value });
    app.notify(`Connection created. Give this URL to the other box: ${box.baseUrl}`);
    refresh();
  }); });
  const cname = h("input", { name: "name", required: true });
  const url = h("input", { name: "baseUrl", type: "url", required: true, placeholder: "https://…/api/transactions/…" });
  const connect = h("form", { class: "card" }, h("h2", {}, "Connect to a box"),
    h("p", { class: "hint" }, "With the URL the other box's administrator gave you."),
    field("Name of the other box", cname), field("URL", url), h("button", { type: "submit" }, "Connect"));
  connect.addEventListener("submit", (e) => { e.preventDefault(); app.guard(async () => {
    await api.post("/boxes/connect", { name: cname.value, baseUrl: url.value });
    app.notify("Connected.");
    refresh();
  }); });
  body.append(h("div", { class: "cards" }, create, connect), table([
    { header: "Name", cell: (b) => b.name },
    { header: "Direction", cell: (b) => (b.sendMethod === "POLL" ? "the other box connects here" : "this box connects there") },
    { header: "Status", cell: (b) => h("span", { class: b.online ? "online" : "offline" }, b.online ? "online" : "offline") },
    { header: "URL", cell: (b) => [h("code", {}, b.baseUrl || ""), " ", b.baseUrl ? h("button", { type: "button", class: "secondary",
      "aria-label": `Copy the URL of ${b.name}`, onclick: () => copy(app, b.baseUrl) }, "Copy") : null] },
    { header: "", cell: (b) => h("button", { type: "button", class: "danger", onclick: () => app.guard(async () => {
      if (!confirm(`Remove the connection ${b.name}?`)) return;
      await api.del(`/boxes/${b.id}`);
      refresh();
    }) }, "Remove") },
  ], boxes, { caption: "Box connections" }));
}

async function copy(app, text) {
  try {
    await navigator.clipboard.writeText(text);
    app.notify("Copied to the clipboard.");
  } catch (_) {
    window.prompt("Copy this URL:", text);
  }
}

async function usersView(app, body) {
  const users = await api.get("/users");
  const user = h("input", { name: "user", required: true, autocomplete: "off" });
  const pass = h("input", { name: "password", type: "password", required: true, autocomplete: "new-password" });
  const role = h("select", { name: "role" }, ["USER", "ADMINISTRATOR"].map((r) => h("option", { value: r }, r)));
  const form = h("form", { class: "card" }, h("h2", {}, "Add a user"), field("User name", user), field("Password", pass),
    field("Role", role), h("button", { type: "submit" }, "Add user"));
  form.addEventListener("submit", (e) => { e.preventDefault(); app.guard(async () => {
    await api.post("/users", { user: user.value, password: pass.value, role: role.value });
    app.notify(`User ${user.value} added.`);
    app.navigate("#/admin/users");
  }); });
  body.append(form, table([
    { header: "User", cell: (u) => u.user },
    { header: "Role", cell: (u) => u.role },
    { header: "", cell: (u) => (u.role === "SUPERUSER" ? "" : h("button", { type: "button", class: "danger",
      onclick: () => app.guard(async () => {
        if (!confirm(`Delete the user ${u.user}?`)) return;
        await api.del(`/users/${u.id}`);
        app.navigate("#/admin/users");
      }) }, "Delete")) },
  ], users, { caption: "Users" }));
}

async function logView(app, body, params) {
  const count = 50;
  const start = Number(params.startindex || 0);
  const entries = await api.get("/log" + api.query({ startindex: start, count, subject: params.subject, type: params.type }));
  const subject = h("input", { name: "subject", value: params.subject || "" });
  const type = h("select", { name: "type" }, ["", "INFO", "WARN", "ERROR", "DEFAULT"].map((t) =>
    h("option", { value: t, selected: (params.type || "") === t }, t || "(all)")));
  const form = h("form", { class: "filters" }, field("Subject", subject), field("Type", type), h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = api.query({ subject: subject.value, type: type.value });
    location.hash = `#/admin/log${q}`;
  });
  const page = (s) => { location.hash = `#/admin/log${api.query({ subject: params.subject, type: params.type, startindex: s })}`; };
  body.append(form, table([
    { header: "Time", cell: (e) => formatTime(e.created) },
    { header: "Type", cell: (e) => h("span", { class: `log-${String(e.entryType).toLowerCase()}` }, e.entryType) },
    { header: "Subject", cell: (e) => e.subject },
    { header: "Message", cell: (e) => e.message },
  ], entries, { caption: "Log, newest first" }),
  h("div", { class: "pager" },
    h("button", { type: "button", class: "secondary", disabled: start === 0, onclick: () => page(Math.max(0, start - count)) }, "← Newer"),
    h("button", { type: "button", class: "secondary", disabled: entries.length < count, onclick: () => page(start + count) }, "Older →")));
}

// -- resources that are lists with a create form and a delete button --------------------------
const RESOURCES = {
  scps: {
    title: "DICOM listeners (SCP)", path: "/scps",
    fields: [["name", "Name"], ["aeTitle", "AE title"], ["port", "Port", "number"]],
    columns: [["Name", (r) => r.name], ["AE title", (r) => r.aeTitle], ["Port", (r) => r.port]],
  },
  scus: {
    title: "DICOM destinations (SCU)", path: "/scus",
    fields: [["name", "Name"], ["aeTitle", "AE title"], ["host", "Host"], ["port", "Port", "number"]],
    columns: [["Name", (r) => r.name], ["AE title", (r) => r.aeTitle], ["Host", (r) => r.host], ["Port", (r) => r.port]],
  },
  watches: {
    title: "Directory watches", path: "/directorywatches",
    fields: [["name", "Name"], ["path", "Folder on the box's machine"]],
    columns: [["Name", (r) => r.name], ["Folder", (r) => r.path]],
  },
  forwarding: {
    title: "Forwarding rules", path: "/forwarding/rules", deletePath: (r) => `/forwarding/rule/${r.id}`,
    custom: forwardingForm,
    columns: [["From", (r) => (r.source ? `${r.source.sourceName} (${r.source.sourceType})` : "")],
      ["To", (r) => (r.destination ? `${r.destination.destinationName} (${r.destination.destinationType})` : "")],
      ["Keep images", (r) => (r.keepImages ? "yes" : "no")]],
  },
  filters: {
    title: "Tag filters", path: "/filtering/filters",
    fields: [["name", "Name"], ["tagFilterType", "Type", "select", ["WHITELIST", "BLACKLIST"]]],
    columns: [["Name", (r) => r.name], ["Type", (r) => r.tagFilterType], ["Tags", (r) => String((r.tags || []).length)]],
  },
  seriestypes: {
    title: "Series types", path: "/seriestypes",
    fields: [["name", "Name"]],
    columns: [["Name", (r) => r.name]],
  },
};

async function resourceView(app, body, resource) {
  let rows;
  try {
    rows = await api.get(resource.path);
  } catch (exc) {
    if (exc.status === 404 || exc.status === 405) {
      body.append(h("h2", {}, resource.title), h("p", {}, "This box does not offer this feature yet."));
      return;
    }
    throw exc;
  }
  const refresh = () => app.navigate(location.hash);
  let form;
  if (resource.custom) {
    form = await resource.custom(app, refresh);
  } else {
    const inputs = {};
    form = h("form", { class: "card" }, h("h2", {}, `Add: ${resource.title}`), resource.fields.map(([key, label, type, choices]) => {
      const input = type === "select"
        ? h("select", { name: key }, choices.map((c) => h("option", { value: c }, c)))
        : h("input", { name: key, type: type || "text", required: true });
      inputs[key] = input;
      return field(label, input);
    }), h("button", { type: "submit" }, "Add"));
    form.addEventListener("submit", (e) => { e.preventDefault(); app.guard(async () => {
      const json = {};
      for (const [key, , type] of resource.fields) json[key] = type === "number" ? Number(inputs[key].value) : inputs[key].value;
      await api.post(resource.path, json);
      app.notify("Added.");
      refresh();
    }); });
  }
  body.append(h("h2", {}, resource.title), form, table([
    ...resource.columns.map(([header, cell]) => ({ header, cell })),
    { header: "", cell: (r) => h("button", { type: "button", class: "danger", onclick: () => app.guard(async () => {
      if (!confirm("Delete it?")) return;
      await api.del(resource.deletePath ? resource.deletePath(r) : `${resource.path}/${r.id}`);
      refresh();
    }) }, "Delete") },
  ], Array.isArray(rows) ? rows : [], { caption: resource.title }));
}

async function forwardingForm(app, refresh) {
  const [sources, destinations] = await Promise.all([api.get("/sources"), api.get("/destinations")]);
  const src = h("select", { name: "source" }, sources.map((s, i) => h("option", { value: i }, `${s.sourceName} (${s.sourceType})`)));
  const dst = h("select", { name: "destination" }, destinations.map((d, i) => h("option", { value: i }, `${d.destinationName} (${d.destinationType})`)));
  const keep = h("input", { type: "checkbox", name: "keepImages", checked: true });
  const form = h("form", { class: "card" }, h("h2", {}, "Add a forwarding rule"), field("From", src), field("To", dst),
    field("Keep the images here after forwarding", keep), h("button", { type: "submit" }, "Add rule"));
  form.addEventListener("submit", (e) => { e.preventDefault(); app.guard(async () => {
    await api.post("/forwarding/rules", { source: sources[Number(src.value)], destination: destinations[Number(dst.value)],
      keepImages: keep.checked });
    app.notify("Forwarding rule added.");
    refresh();
  }); });
  return form;
}
