// The image viewer: the box's PNG rendering with window/level, frames, zoom to fit,
// the attributes as a tree and the DICOM file for download.
import * as api from "./api.js";
import { h, clear, field } from "./dom.js";

// Window presets as [centre, width]; "Auto" lets the box use the file's own window.
const PRESETS = [
  ["Auto (from the file)", null],
  ["Full pixel range", "full"],
  ["CT soft tissue (40 / 400)", [40, 400]],
  ["CT lung (-600 / 1500)", [-600, 1500]],
  ["CT bone (300 / 2000)", [300, 2000]],
  ["CT brain (40 / 80)", [40, 80]],
];

export async function viewerView(app, imageId) {
  const { main, guard } = app;
  const [image, info] = await Promise.all([
    api.get(`/metadata/images/${imageId}`),
    api.get(`/images/${imageId}/imageinformation`).catch(() => null),
  ]);
  const series = await api.get(`/metadata/series/${image.seriesId}`).catch(() => null);
  const frames = info && info.numberOfFrames > 0 ? info.numberOfFrames : 1;
  const lo = info ? info.minimumPixelValue : 0;
  const hi = info ? info.maximumPixelValue : 4095;
  const view = { frame: 1, centre: null, width: null };

  const img = h("img", { id: "viewer-image", alt: `Image ${imageId}, frame 1`, draggable: "false" });
  const stage = h("div", { class: "stage", tabindex: "0",
    "aria-label": "Image. Drag horizontally to change the window width, vertically to change the level; arrow keys do the same." }, img);
  const centre = h("input", { type: "number", name: "centre", step: "1" });
  const width = h("input", { type: "number", name: "width", step: "1", min: "1" });
  const preset = h("select", { name: "preset" }, PRESETS.map(([label], i) => h("option", { value: i }, label)));
  const frame = h("input", { type: "range", name: "frame", min: "1", max: String(frames), value: "1", disabled: frames <= 1 });
  const frameLabel = h("output", { for: "frame" }, `1 / ${frames}`);
  const status = h("p", { class: "hint", "aria-live": "polite" });

  let pending = null;
  function url() {
    const height = Math.max(64, Math.min(2048, Math.round(stage.clientHeight || 512)));
    const q = { framenumber: view.frame, imageheight: height };
    if (view.centre !== null && view.width !== null) {
      const min = Math.round(view.centre - view.width / 2);
      let max = Math.round(view.centre + view.width / 2);
      if (max <= min) max = min + 1;
      // 0/0 means "the file's window" to the API; nudge a genuine 0 bound away from it.
      q.windowmin = min === 0 && max === 0 ? -1 : min;
      q.windowmax = max === 0 ? 1 : max;
    }
    return `/api/images/${imageId}/png${api.query(q)}`;
  }
  function show() {
    clearTimeout(pending);
    pending = setTimeout(() => {
      img.src = url();
      img.alt = `Image ${imageId}, frame ${view.frame}`;
      frameLabel.textContent = `${view.frame} / ${frames}`;
      status.textContent = view.centre === null ? "Window from the file" :
        `Window centre ${Math.round(view.centre)}, width ${Math.round(view.width)}`;
    }, 60);
  }
  img.addEventListener("error", () => guard(async () => {
    // fetch the same URL to read the box's message (an <img> cannot)
    await api.request("GET", url().replace(/^\/api/, ""), { raw: true });
  }));

  function setWindow(c, w) {
    view.centre = c;
    view.width = Math.max(1, w);
    centre.value = String(Math.round(view.centre));
    width.value = String(Math.round(view.width));
    show();
  }
  preset.addEventListener("change", () => {
    const p = PRESETS[Number(preset.value)][1];
    if (p === null) { view.centre = null; view.width = null; centre.value = ""; width.value = ""; show(); }
    else if (p === "full") setWindow((lo + hi) / 2, Math.max(1, hi - lo));
    else setWindow(p[0], p[1]);
  });
  const onNumbers = () => {
    if (centre.value !== "" && width.value !== "") setWindow(Number(centre.value), Number(width.value));
  };
  centre.addEventListener("change", onNumbers);
  width.addEventListener("change", onNumbers);
  frame.addEventListener("input", () => { view.frame = Number(frame.value); show(); });

  // Dragging: x changes the width, y the level (centre), scaled to the pixel range.
  let drag = null;
  const scale = Math.max(1, (hi - lo) / 256);
  stage.addEventListener("pointerdown", (e) => {
    const c = view.centre ?? (lo + hi) / 2;
    const w = view.width ?? Math.max(1, hi - lo);
    drag = { x: e.clientX, y: e.clientY, c, w };
    stage.setPointerCapture(e.pointerId);
  });
  stage.addEventListener("pointermove", (e) => {
    if (!drag) return;
    setWindow(drag.c + (e.clientY - drag.y) * scale, drag.w + (e.clientX - drag.x) * scale);
  });
  const endDrag = () => { drag = null; };
  stage.addEventListener("pointerup", endDrag);
  stage.addEventListener("pointercancel", endDrag);
  stage.addEventListener("keydown", (e) => {
    const c = view.centre ?? (lo + hi) / 2;
    const w = view.width ?? Math.max(1, hi - lo);
    const step = 8 * scale;
    const moves = { ArrowUp: [-step, 0], ArrowDown: [step, 0], ArrowLeft: [0, -step], ArrowRight: [0, step] };
    if (moves[e.key]) { e.preventDefault(); setWindow(c + moves[e.key][0], w + moves[e.key][1]); }
    if (e.key === "PageDown" && view.frame < frames) { view.frame += 1; frame.value = String(view.frame); show(); }
    if (e.key === "PageUp" && view.frame > 1) { view.frame -= 1; frame.value = String(view.frame); show(); }
  });

  const attributes = h("div", { class: "attributes" });
  const attrButton = h("button", { type: "button", class: "secondary", "aria-expanded": "false",
    onclick: () => guard(async () => {
      if (attrButton.getAttribute("aria-expanded") === "true") {
        clear(attributes);
        attrButton.setAttribute("aria-expanded", "false");
        attrButton.textContent = "Show attributes";
        return;
      }
      const list = await api.get(`/images/${imageId}/attributes`);
      clear(attributes).appendChild(attributeTree(list));
      attrButton.setAttribute("aria-expanded", "true");
      attrButton.textContent = "Hide attributes";
    }) }, "Show attributes");

  const back = series ? h("a", { href: `#/series/${series.id}` }, "← Back to the series") : null;
  main.append(
    h("h1", {}, `Image ${image.instanceNumber && image.instanceNumber.value ? image.instanceNumber.value : imageId}`),
    back,
    h("div", { class: "viewer" },
      stage,
      h("form", { class: "controls", onsubmit: (e) => e.preventDefault() },
        field("Window preset", preset), field("Window centre", centre), field("Window width", width),
        field("Frame", frame), frameLabel, status,
        h("p", {}, h("a", { href: `/api/images/${imageId}`, download: `image-${imageId}.dcm`, class: "button" }, "Download DICOM file")),
        attrButton)),
    attributes);
  show();
  window.addEventListener("resize", show, { once: true });
}

// The flat attribute list (each with a depth) as nested lists; sequences fold open.
function attributeTree(list) {
  const root = h("ul", { class: "tree", role: "tree", "aria-label": "DICOM attributes" });
  const stack = [root];
  for (const a of list) {
    const depth = Math.max(0, Number(a.depth || 0));
    while (stack.length > depth + 1) stack.pop();
    while (stack.length < depth + 1) {
      // an item or sequence without its own row: attach a holder to keep the nesting
      const holder = h("ul", { role: "group" });
      stack[stack.length - 1].appendChild(h("li", { role: "treeitem" }, holder));
      stack.push(holder);
    }
    const tag = `(${a.group},${a.element})`;
    const label = [h("code", {}, tag), " ", h("strong", {}, a.name || ""), " ", h("span", { class: "vr" }, a.vr || ""), " ",
      h("span", { class: "value" }, a.vr === "SQ" ? "" : String(a.value ?? ""))];
    if (a.vr === "SQ") {
      const children = h("ul", { role: "group" });
      const details = h("details", { open: depth < 1 }, h("summary", {}, label), children);
      stack[stack.length - 1].appendChild(h("li", { role: "treeitem" }, details));
      stack.push(children);
    } else {
      stack[stack.length - 1].appendChild(h("li", { role: "treeitem" }, label));
    }
  }
  return root;
}
