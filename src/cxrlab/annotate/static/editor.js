// A reader's marks on one image: boxes drawn, selected, moved, resized, relabelled and deleted with the
// mouse and keys, image-level labels ticked; every change is queued on the autosave as one API write.
// Boxes live in original image pixels; the screen only ever sees them through the view's transform.
import { api } from "/ui/api.js";
import { draggedBox, handleAt, inside, normalBox, strokeBox } from "/ui/view.js";

const PALETTE = ["#ffd43b", "#4dabf7", "#ff6b6b", "#69db7c", "#da77f2", "#ffa94d", "#3bc9db", "#f783ac"];

export function labelColour(labels, label) {
  const i = Math.max(0, labels.indexOf(label));
  return PALETTE[i % PALETTE.length];
}

export class BoxEditor {
  constructor(display, saver, picker, project) {
    this.display = display;
    this.saver = saver;
    this.picker = picker;
    this.labels = project.labels;
    this.boxLabels = project.box_labels;
    this.globalLabels = project.labels.filter((l) => !project.box_labels.includes(l));
    this.imageId = null;
    this.marks = [];
    this.selected = null;
    this.drag = null;
    this.onMarks = () => {};
  }

  get view() {
    return this.display.view;
  }

  async load(imageId) {
    const marks = await api.get(`/api/images/${imageId}/annotations`);
    this.setMarks(imageId, marks);
  }

  setMarks(imageId, marks) {
    this.imageId = imageId;
    this.marks = marks.map((m) => ({ id: m.id, label: m.label, box: m.box, version: m.version }));
    this.selected = null;
    this.drag = null;
    this.onMarks();
  }

  boxes() {
    return this.marks.filter((m) => m.box);
  }

  // ---------------------------------------------------------------------------------- drawing on the canvas

  overlay(c) {
    for (const m of this.boxes()) {
      const on = m === this.selected;
      strokeBox(c, this.view, m.box, labelColour(this.labels, m.label), { width: on ? 3 : 2, handles: on, text: m.label });
    }
    if (this.drag && this.drag.kind === "draw" && this.drag.box) {
      strokeBox(c, this.view, this.drag.box, "#fff", { dash: [6, 4] });
    }
  }

  /** Mouse down with the box tool: a handle resizes, a box moves, elsewhere a new box is drawn. */
  press(event) {
    const [x, y] = this.view.eventPoint(event);
    const [ix, iy] = this.view.toImage(x, y);
    const handle = this.selected && this.selected.box && handleAt(this.view, this.selected.box, x, y);
    if (handle) {
      this.drag = { kind: "resize", mark: this.selected, handle, before: this.selected.box.slice() };
      return;
    }
    const hit = [...this.boxes()].reverse().find((m) => inside(m.box, ix, iy));
    if (hit) {
      this.selected = hit;
      this.drag = { kind: "move", mark: hit, from: [ix, iy], before: hit.box.slice() };
    } else {
      this.selected = null;
      this.drag = { kind: "draw", from: [ix, iy], box: null };
    }
    this.changed(false);
  }

  move(event) {
    const d = this.drag;
    if (!d) return false;
    const [ix, iy] = this.view.toImage(...this.view.eventPoint(event));
    const { width, height } = this.display.size;
    if (d.kind === "draw") d.box = [d.from[0], d.from[1], ix, iy];
    else d.mark.box = draggedBox(d, ix, iy, width, height) || d.mark.box;
    this.display.render();
    return true;
  }

  async release(event) {
    const d = this.drag;
    this.drag = null;
    if (!d) return false;
    const { width, height } = this.display.size;
    if (d.kind === "draw") {
      const box = d.box && normalBox(d.box, width, height);
      this.display.render();
      if (!box || Math.abs(box[2] - box[0]) * this.view.scale < 4 || Math.abs(box[3] - box[1]) * this.view.scale < 4) return true;
      const [x, y] = this.view.eventPoint(event);
      const label = await this.picker.choose(this.boxLabels, x + 12, y + 12);
      if (label) this.create(label, box);
      else this.display.render();
    } else {
      d.mark.box = normalBox(d.mark.box, width, height) || d.before;
      if (d.mark.box.some((v, i) => v !== d.before[i])) this.update(d.mark, { box: d.mark.box.slice() });
      this.display.render();
    }
    return true;
  }

  // ---------------------------------------------------------------------------------- changes, each one saved

  changed(save = true) {
    this.display.render();
    this.onMarks();
    return save;
  }

  create(label, box) {
    const mark = { id: null, label, box, version: 0 };
    this.marks.push(mark);
    if (box) this.selected = mark;
    const imageId = this.imageId;
    this.saver.add(async () => {
      const saved = await api.post(`/api/images/${imageId}/annotations`, { label, box });
      mark.id = saved.id;
      mark.version = saved.version;
      mark.label = saved.label;
    }, { imageId });
    this.changed();
    return mark;
  }

  update(mark, change) {
    Object.assign(mark, change);
    const imageId = this.imageId;
    this.saver.add(async () => {
      if (mark.id === null) return; // its creation was refused: nothing stored to change
      const saved = await api.patch(`/api/annotations/${mark.id}`, { version: mark.version, ...change });
      mark.version = saved.version;
    }, { imageId });
    this.changed();
  }

  remove(mark) {
    this.marks = this.marks.filter((m) => m !== mark);
    if (this.selected === mark) this.selected = null;
    const imageId = this.imageId;
    this.saver.add(async () => {
      if (mark.id !== null) await api.del(`/api/annotations/${mark.id}?version=${mark.version}`);
    }, { imageId });
    this.changed();
  }

  deleteSelected() {
    if (this.selected) this.remove(this.selected);
  }

  async relabelSelected() {
    const mark = this.selected;
    if (!mark) return;
    const [x, y] = this.view.toScreen(mark.box[2], mark.box[1]);
    const label = await this.picker.choose(this.boxLabels, x + 8, y, mark.label);
    if (label && label !== mark.label) this.update(mark, { label });
  }

  hasGlobal(label) {
    return this.marks.some((m) => !m.box && m.label === label);
  }

  /** Tick or untick an image-level label ("No finding" among them). */
  toggleGlobal(label, on = !this.hasGlobal(label)) {
    const existing = this.marks.find((m) => !m.box && m.label === label);
    if (on && !existing) this.create(label, null);
    if (!on && existing) this.remove(existing);
  }

  selectNext(step) {
    const boxes = this.boxes();
    if (!boxes.length) return;
    const i = boxes.indexOf(this.selected);
    this.selected = boxes[(i + step + boxes.length) % boxes.length];
    this.changed(false);
  }
}
