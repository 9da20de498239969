// The adjudicator's view: every finished reader's boxes (dashed, one colour per reader), the fusion that
// cxrlab.labels.consensus proposes drawn apart (solid white, numbered), and per proposed finding accept /
// edit (move, resize, relabel) / reject. Each decision saves the whole consensus set of the image
// (PUT .../consensus with the task's version); "Finish" completes the adjudication.
import { api, el, header, param, session } from "/ui/api.js";
import { Display, helpDialog, ImageCache, WINDOW_KEYS } from "/ui/display.js";
import { Picker } from "/ui/picker.js";
import { Saver, savingState } from "/ui/save.js";
import { draggedBox, handleAt, inside, normalBox, strokeBox } from "/ui/view.js";

const READER_COLOURS = ["#4dabf7", "#ff6b6b", "#69db7c", "#ffd43b", "#da77f2", "#ffa94d", "#3bc9db", "#f783ac"];
const FUSION = "#ffffff";
const KEYS = [
  ["click a finding, Tab", "select a proposed finding"],
  ["A / E / X", "accept / edit / reject the selected finding"],
  ["drag (editing)", "move or resize the finding's box"],
  ["drag elsewhere", "add a finding of your own (pick its label)"],
  ["T / U", "show or hide the readers' boxes / the fusion"],
  ["→ / ←", "next / previous image"],
  ["Enter", "finish this image"],
  ...WINDOW_KEYS,
  ["?", "this help"],
];

const state = { tasks: [], index: -1, findings: [], selected: null, showReads: true, showFusion: true, drag: null };
const cache = new ImageCache();

const sameBox = (a, b) => (!a && !b) || (a && b && a.every((v, i) => Math.abs(v - b[i]) < 0.5));

/** Proposed findings with the decisions already stored in the consensus (accepted, edited, added). */
function findingsOf(data) {
  const left = data.consensus.slice();
  const take = (test) => {
    const i = left.findIndex(test);
    return i >= 0 ? left.splice(i, 1)[0] : null;
  };
  const findings = data.proposed.map((p, i) => {
    const f = { key: `F${i + 1}`, label: p.label, proposed: p.box, box: p.box && p.box.slice(), n: p.n_readers, decision: "pending" };
    const accepted = take((c) => c.label === p.label && sameBox(c.box, p.box));
    const edited = !accepted && take((c) => c.provenance === "edited" && !!c.box === !!p.box);
    if (accepted) f.decision = "accepted";
    else if (edited) Object.assign(f, { decision: "edited", label: edited.label, box: edited.box });
    else if (data.status === "done" || data.consensus.length) f.decision = "rejected";
    return f;
  });
  left.forEach((c, i) => findings.push({ key: `A${i + 1}`, label: c.label, proposed: null, box: c.box, n: null, decision: "added" }));
  return findings;
}

function consensusMarks() {
  const provenance = { accepted: "fusion", edited: "edited", added: "adjudicator" };
  return state.findings
    .filter((f) => provenance[f.decision])
    .map((f) => ({ label: f.label, box: f.box, provenance: provenance[f.decision] }));
}

function save(complete = false) {
  const imageId = state.imageId;
  const marks = consensusMarks();
  state.saver.add(async () => {
    const result = await api.put(`/api/images/${imageId}/consensus`, { version: state.version, marks, complete });
    if (state.imageId === imageId) state.version = result.version;
    const task = state.tasks.find((t) => t.image_id === imageId);
    if (task) task.status = result.status;
  }, { imageId });
}

function decide(finding, decision) {
  if (!finding) return;
  finding.decision = decision;
  if (decision === "accepted") {
    finding.box = finding.proposed && finding.proposed.slice();
  }
  state.selected = finding;
  save();
  redraw();
}

function overlay(c) {
  const view = state.display.view;
  if (state.showReads) {
    for (const r of state.data.reads) {
      if (!r.box) continue;
      const colour = READER_COLOURS[state.data.readers.indexOf(r.reader) % READER_COLOURS.length];
      strokeBox(c, view, r.box, colour, { width: 1.5, dash: [5, 4] });
    }
  }
  if (!state.showFusion) return;
  for (const f of state.findings) {
    if (!f.box || f.decision === "rejected") continue;
    const on = f === state.selected;
    const colour = f.decision === "edited" || f.decision === "added" ? "#ffd43b" : FUSION;
    strokeBox(c, view, f.box, colour, { width: on ? 3.5 : 2.5, handles: on && f.decision !== "accepted", text: `${f.key} ${f.label}` });
  }
}

function findingCard(f) {
  const button = (text, decision, key) =>
    el("button", { type: "button", class: f.decision === decision ? "on" : "", title: key, onclick: (e) => (e.stopPropagation(), decide(f, decision)) }, text);
  const who = f.n != null ? `${f.n} reader${f.n === 1 ? "" : "s"}` : f.decision === "added" ? "yours" : "";
  return el(
    "div",
    { class: `finding ${f.decision}${f === state.selected ? " selected" : ""}`, "data-key": f.key, onclick: () => ((state.selected = f), redraw()) },
    el("strong", {}, `${f.key} `), f.label, el("span", { class: "muted" }, ` · ${f.box ? "box" : "image-level"} · ${who}`),
    el("div", { class: "muted" }, f.decision),
    f.decision === "added"
      ? el("div", { class: "buttons" }, button("Remove", "rejected", "X"))
      : el("div", { class: "buttons" }, button("Accept", "accepted", "A"), button("Edit", "edited", "E"), button("Reject", "rejected", "X")),
  );
}

function agreementText(agreement) {
  if (!agreement) return "fewer than two readers: no agreement";
  const show = (v) => (v == null ? "–" : typeof v === "number" ? v.toFixed(2) : v);
  return `kappa ${show(agreement.kappa_pooled)} · box F1 ${show(agreement.box_f1)} · mean IoU ${show(agreement.mean_iou)}`;
}

function renderSide() {
  const task = state.tasks[state.index];
  const data = state.data;
  const side = document.getElementById("side");
  const legend = data.readers.map((r, i) => el("span", {}, el("span", { class: "swatch", style: `background:${READER_COLOURS[i % READER_COLOURS.length]}` }), r));
  const done = state.tasks.filter((t) => t.status === "done").length;
  side.replaceChildren(
    el("h2", {}, `Image ${state.index + 1} of ${state.tasks.length}`),
    el("p", { class: "muted" }, `${task.image_key} · ${task.status === "done" ? "adjudicated" : "to adjudicate"}`),
    el("p", { id: "progress" }, `${done} / ${state.tasks.length} adjudicated`),
    el("h3", {}, "Readers"),
    el("div", { class: "legend" }, ...legend, el("span", {}, el("span", { class: "swatch", style: `background:${FUSION}` }), "fusion")),
    el("p", { id: "agreement", title: "agreement of the readers on this image" }, agreementText(data.agreement)),
    el("h3", {}, `Proposed fusion (${data.proposed.length}, at least ${data.min_readers} readers)`),
    ...(state.findings.length ? state.findings.map(findingCard) : [el("p", { class: "muted" }, "The readers agree on no finding here.")]),
    el("div", { class: "actions" },
      el("button", { type: "button", onclick: () => go(state.index - 1) }, "← Previous"),
      el("button", { type: "button", onclick: () => go(state.index + 1) }, "Next →"),
      el("button", { type: "button", class: "primary", id: "finish", onclick: finish }, "Finish ✓ (Enter)"),
    ),
  );
}

function redraw() {
  state.display.render();
  renderSide();
}

async function go(index) {
  if (index < 0 || index >= state.tasks.length) return;
  state.index = index;
  const task = state.tasks[index];
  history.replaceState(null, "", `?project=${state.project.id}&image=${task.image_id}`);
  const [entry, data] = await Promise.all([cache.get(task.image_id), api.get(`/api/images/${task.image_id}/adjudication`)]);
  if (state.tasks[state.index] !== task) return;
  Object.assign(state, { imageId: task.image_id, data, version: data.version, findings: findingsOf(data), selected: null });
  state.display.show(entry);
  cache.prefetch([state.tasks[index + 1]?.image_id]);
  renderSide();
}

async function finish() {
  save(true);
  if (!(await state.saver.settled())) return;
  const next = state.tasks.findIndex((t, i) => i > state.index && t.status === "pending");
  if (next >= 0) go(next);
  else renderSide();
}

function press(event) {
  const view = state.display.view;
  const [x, y] = view.eventPoint(event);
  const [ix, iy] = view.toImage(x, y);
  const f = state.selected;
  const editable = f && f.box && (f.decision === "edited" || f.decision === "added");
  const handle = editable && handleAt(view, f.box, x, y);
  if (handle) state.drag = { kind: "resize", f, handle, before: f.box.slice() };
  else if (editable && inside(f.box, ix, iy)) state.drag = { kind: "move", f, from: [ix, iy], before: f.box.slice() };
  else state.drag = { kind: "draw", from: [ix, iy], box: null };
}

function moveDrag(event) {
  const d = state.drag;
  if (!d) return;
  const { width, height } = state.display.size;
  const [ix, iy] = state.display.view.toImage(...state.display.view.eventPoint(event));
  if (d.kind === "draw") d.box = [d.from[0], d.from[1], ix, iy];
  else d.f.box = draggedBox(d, ix, iy, width, height) || d.f.box;
  state.display.render();
}

async function release(event) {
  const d = state.drag;
  state.drag = null;
  if (!d) return;
  const { width, height } = state.display.size;
  if (d.kind !== "draw") {
    d.f.box = normalBox(d.f.box, width, height) || d.before;
    if (!sameBox(d.f.box, d.before)) save();
    return redraw();
  }
  const box = d.box && normalBox(d.box, width, height);
  if (!box || (box[2] - box[0]) * state.display.view.scale < 4) return;
  const [x, y] = state.display.view.eventPoint(event);
  const label = await state.picker.choose(state.project.box_labels, x + 12, y + 12);
  if (!label) return state.display.render();
  const added = state.findings.filter((f) => f.decision === "added").length;
  const f = { key: `A${added + 1}`, label, proposed: null, box, n: null, decision: "added" };
  state.findings.push(f);
  decide(f, "added");
}

function onKey(event, help) {
  if (state.picker.open || (event.target.closest && event.target.closest("input, select, dialog"))) return;
  if (state.display.key(event)) return event.preventDefault();
  const f = state.selected;
  const pick = (step) => {
    const i = state.findings.indexOf(f);
    state.selected = state.findings[(i + step + state.findings.length) % state.findings.length];
    redraw();
  };
  const actions = {
    a: () => f && f.decision !== "added" && decide(f, "accepted"),
    e: () => f && f.decision !== "added" && decide(f, "edited"),
    x: () => f && decide(f, "rejected"),
    t: () => ((state.showReads = !state.showReads), state.display.render()),
    u: () => ((state.showFusion = !state.showFusion), state.display.render()),
    Tab: () => state.findings.length && pick(event.shiftKey ? -1 : 1),
    ArrowRight: () => go(state.index + 1),
    ArrowLeft: () => go(state.index - 1),
    Enter: finish,
    "?": () => help.toggle(),
  };
  const action = actions[event.key];
  if (!action || event.ctrlKey || event.metaKey || event.altKey) return;
  action();
  event.preventDefault();
}

async function main() {
  const user = await session();
  const projectId = Number(param("project"));
  state.project = await api.get(`/api/projects/${projectId}`);
  const queue = await api.get(`/api/projects/${projectId}/queue`);
  state.tasks = queue.tasks.filter((t) => t.kind === "adjudicate");
  const canvas = document.getElementById("canvas");
  const saving = savingState(() => state.saver.retry());
  state.saver = new Saver(saving.show, async (context) => {
    if (context.imageId === state.imageId) await go(state.index); // stale: show what is stored
  });
  state.display = new Display(canvas, overlay);
  state.picker = new Picker(document.getElementById("stage"));
  const help = helpDialog(KEYS);
  const bar = document.getElementById("toolbar");
  bar.append(header(user, `${state.project.name} · adjudication`), el("div", { class: "tools" }, ...state.display.controls(), el("span", { class: "sep" }), saving.node, el("button", { type: "button", onclick: () => help.toggle() }, "?")));
  canvas.addEventListener("mousedown", (event) => {
    canvas.focus();
    if (event.button === 2) state.display.startWindow(event);
    else if (event.button === 1) state.display.startPan(event);
    else if (event.button === 0 && state.display.pixels) press(event);
    event.preventDefault();
  });
  window.addEventListener("mousemove", (event) => state.display.move(event) || moveDrag(event));
  window.addEventListener("mouseup", (event) => state.display.end() || release(event));
  document.addEventListener("keydown", (event) => onKey(event, help));
  window.cxrAdjudication = { state, go, finish };
  if (!state.tasks.length) {
    document.getElementById("side").replaceChildren(el("h2", {}, "Nothing to adjudicate"), el("p", {}, "No image of yours is ready: adjudication starts when every reader of a test image has finished."));
    return;
  }
  const wanted = state.tasks.findIndex((t) => t.image_id === Number(param("image")));
  const pending = state.tasks.findIndex((t) => t.status === "pending");
  await go(wanted >= 0 ? wanted : Math.max(0, pending));
}

main();
