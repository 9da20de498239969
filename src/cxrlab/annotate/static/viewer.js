// The reader's viewer: their queue of one project, one image at a time, boxes and image-level labels saved
// as they are made. ``window.cxrViewer`` exposes the state to the browser tests and the benchmark.
import { api, el, header, param, session } from "/ui/api.js";
import { Display, helpDialog, ImageCache, WINDOW_KEYS } from "/ui/display.js";
import { BoxEditor, labelColour } from "/ui/editor.js";
import { Picker } from "/ui/picker.js";
import { Saver, savingState } from "/ui/save.js";

const KEYS = [
  ["B / W / P", "tool: box, window, pan"],
  ["drag (box tool)", "draw a box, then pick its label (1-9 or type, Enter)"],
  ["click, drag, corners", "select, move, resize a box"],
  ["Tab / Shift+Tab", "select the next / previous box"],
  ["E or double-click", "change the selected box's label"],
  ["Delete / Backspace", "delete the selected box"],
  ["N", "No finding (toggle)"],
  ["Shift+1…9", "tick the n-th image-level label"],
  ["→ or . / ← or ,", "next / previous image"],
  ["D", "mark this image read, go to the next"],
  ...WINDOW_KEYS,
  ["?", "this help"],
];

const state = { tool: "box", tasks: [], index: -1, timings: [], space: false };
const cache = new ImageCache();

function progressText() {
  const done = state.tasks.filter((t) => t.status === "done").length;
  return `${done} / ${state.tasks.length} read`;
}

function renderSide() {
  const editor = state.editor;
  const task = state.tasks[state.index];
  const side = document.getElementById("side");
  const boxes = editor.boxes().map((m) =>
    el(
      "li",
      { class: m === editor.selected ? "selected" : "", onclick: () => ((editor.selected = m), editor.changed(false)) },
      el("span", { class: "swatch", style: `background:${labelColour(editor.labels, m.label)}` }),
      m.label,
      el("button", { type: "button", class: "small", title: "delete", onclick: (e) => (e.stopPropagation(), editor.remove(m)) }, "×"),
    ),
  );
  const globals = editor.globalLabels.map((label, i) =>
    el(
      "label",
      { class: "tick" },
      el("input", { type: "checkbox", "data-label": label, checked: editor.hasGlobal(label), onchange: (e) => (editor.toggleGlobal(label, e.target.checked), e.target.blur()) }),
      `${label}`,
      el("kbd", {}, label === "No finding" ? "N" : i < 9 ? `⇧${i + 1}` : ""),
    ),
  );
  side.replaceChildren(
    el("h2", {}, task ? `Image ${state.index + 1} of ${state.tasks.length}` : "No image"),
    el("p", { class: "muted" }, task ? `${task.image_key} · ${task.split} · ${task.status === "done" ? "read" : "to read"}` : ""),
    el("p", { id: "progress" }, progressText()),
    el("h3", {}, `Findings (${boxes.length})`),
    boxes.length ? el("ul", { class: "findings" }, ...boxes) : el("p", { class: "muted" }, "No box: drag on the image."),
    el("h3", {}, "Image-level labels"),
    el("div", { class: "globals" }, ...globals),
    el("div", { class: "actions" },
      el("button", { type: "button", onclick: () => go(state.index - 1) }, "← Previous"),
      el("button", { type: "button", onclick: () => go(state.index + 1) }, "Next →"),
      el("button", { type: "button", class: "primary", onclick: done }, "Done ✓ & next (D)"),
    ),
  );
}

/** Show task ``index``: the image drawn from the cache, then its marks; the neighbours fetched ahead. */
async function go(index) {
  if (index < 0 || index >= state.tasks.length) return;
  const started = performance.now();
  state.index = index;
  const task = state.tasks[index];
  history.replaceState(null, "", `?project=${state.project.id}&image=${task.image_id}`);
  const [entry] = await Promise.all([cache.get(task.image_id), state.editor.load(task.image_id)]);
  if (state.tasks[state.index] !== task) return; // the reader moved on meanwhile
  state.display.show(entry);
  const ms = performance.now() - started;
  state.timings.push(ms);
  document.dispatchEvent(new CustomEvent("cxr:drawn", { detail: { imageId: task.image_id, ms } }));
  cache.prefetch([state.tasks[index + 1]?.image_id, state.tasks[index - 1]?.image_id]);
  renderSide();
}

async function done() {
  const task = state.tasks[state.index];
  if (!task) return;
  if (!(await state.saver.settled())) return;
  const result = await api.post(`/api/images/${task.image_id}/complete`);
  task.status = result.status;
  task.version = result.version;
  renderSide();
  const next = state.tasks.findIndex((t, i) => i > state.index && t.status === "pending");
  if (next >= 0) await go(next);
}

function setTool(tool) {
  state.tool = tool;
  for (const b of document.querySelectorAll("[data-tool]")) b.classList.toggle("on", b.dataset.tool === tool);
  document.getElementById("canvas").dataset.tool = tool;
}

function onKey(event, help) {
  const target = event.target;
  if (state.editor.picker.open || (target.closest && target.closest("input, select, textarea, dialog[open]"))) return;
  const editor = state.editor;
  if (event.shiftKey && /^Digit[1-9]$/.test(event.code)) {
    const label = editor.globalLabels[Number(event.code.slice(5)) - 1];
    if (label) editor.toggleGlobal(label);
  } else if (state.display.key(event)) {
    // a window / zoom key
  } else {
    const actions = {
      b: () => setTool("box"),
      w: () => setTool("window"),
      p: () => setTool("pan"),
      n: () => editor.toggleGlobal("No finding"),
      e: () => editor.relabelSelected(),
      d: done,
      Delete: () => editor.deleteSelected(),
      Backspace: () => editor.deleteSelected(),
      Escape: () => ((editor.selected = null), editor.changed(false)),
      Tab: () => editor.selectNext(event.shiftKey ? -1 : 1),
      ArrowRight: () => go(state.index + 1),
      ".": () => go(state.index + 1),
      ArrowLeft: () => go(state.index - 1),
      ",": () => go(state.index - 1),
      "?": () => help.toggle(),
      " ": () => (state.space = true),
    };
    const action = actions[event.key];
    if (!action || event.ctrlKey || event.metaKey || event.altKey) return;
    action();
  }
  event.preventDefault();
}

function wireMouse(canvas) {
  const display = state.display;
  const editor = state.editor;
  canvas.addEventListener("mousedown", (event) => {
    canvas.focus();
    if (event.button === 2 || (event.button === 0 && state.tool === "window")) display.startWindow(event);
    else if (event.button === 1 || (event.button === 0 && (state.tool === "pan" || state.space))) display.startPan(event);
    else if (event.button === 0 && display.pixels) editor.press(event);
    event.preventDefault();
  });
  window.addEventListener("mousemove", (event) => display.move(event) || editor.move(event));
  window.addEventListener("mouseup", (event) => display.end() || editor.release(event));
  canvas.addEventListener("dblclick", () => editor.relabelSelected());
  document.addEventListener("keyup", (event) => {
    if (event.key === " ") state.space = false;
  });
}

function toolbar(user) {
  const tools = [["box", "Box (B)"], ["window", "Window (W)"], ["pan", "Pan (P)"]].map(([tool, text]) =>
    el("button", { type: "button", "data-tool": tool, onclick: (e) => (setTool(tool), e.currentTarget.blur()) }, text),
  );
  const bar = document.getElementById("toolbar");
  bar.append(header(user, state.project.name));
  bar.append(el("div", { class: "tools" }, ...tools, el("span", { class: "sep" }), ...state.display.controls(), el("span", { class: "sep" }), state.indicator.node, el("button", { type: "button", title: "keyboard (?)", onclick: () => state.help.toggle() }, "?")));
}

async function main() {
  const user = await session();
  const projectId = Number(param("project"));
  state.project = await api.get(`/api/projects/${projectId}`);
  const queue = await api.get(`/api/projects/${projectId}/queue`);
  state.tasks = queue.tasks.filter((t) => t.kind === "read");
  const canvas = document.getElementById("canvas");
  state.indicator = savingState(() => state.saver.retry());
  state.saver = new Saver(state.indicator.show, async (context) => {
    if (context.imageId === state.editor.imageId) await state.editor.load(context.imageId);
    state.display.render();
  });
  state.display = new Display(canvas, (c) => state.editor.overlay(c));
  state.editor = new BoxEditor(state.display, state.saver, new Picker(document.getElementById("stage")), state.project);
  state.editor.onMarks = renderSide;
  state.help = helpDialog(KEYS);
  toolbar(user);
  setTool("box");
  wireMouse(canvas);
  document.addEventListener("keydown", (event) => onKey(event, state.help));
  window.addEventListener("beforeunload", (event) => {
    if (state.saver.pending) event.preventDefault();
  });
  window.cxrViewer = { state, cache, go, done, toScreen: (x, y) => state.display.view.toScreen(x, y) };
  const wanted = Number(param("image"));
  const start = state.tasks.findIndex((t) => t.image_id === wanted);
  const firstPending = state.tasks.findIndex((t) => t.status === "pending");
  if (!state.tasks.length) return renderEmpty();
  await go(start >= 0 ? start : Math.max(0, firstPending));
}

function renderEmpty() {
  document.getElementById("side").replaceChildren(el("h2", {}, "Nothing to read"), el("p", {}, "Your queue in this project is empty."));
}

main();
