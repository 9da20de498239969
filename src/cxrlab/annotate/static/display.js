// What the reader and the adjudicator share: one image on a canvas with window / level (drag, presets from
// the DICOM and "lung" / "mediastinum", reset), invert, zoom on the wheel, pan, fit and 1:1, and a small
// cache that fetches the next images ahead so "next" only has to draw.
import { api, el } from "/ui/api.js";
import { loadPixels, renderWindow } from "/ui/image.js";
import { View } from "/ui/view.js";

const CACHE_SIZE = 3;
const HALVED_ABOVE = 1400; // px: a larger image opens at level 1 (halved), full resolution on zoom

/** The window an image opens with: its first DICOM window, else "auto". */
export function openingWindow(presets) {
  const p = presets.find((w) => w.name.startsWith("DICOM")) || presets.find((w) => w.name === "auto") || presets[0];
  return p ? { center: p.center, width: p.width } : { center: 32768, width: 65536 };
}

const windowKey = (center, width, invert) => `${center}/${width}/${invert}`;

/** Fetch an image and draw it through its opening window on a canvas of its own, ahead of showing it. */
async function prepare(imageId) {
  const info = await api.get(`/api/images/${imageId}`);
  const level = Math.max(info.width, info.height) > HALVED_ABOVE ? 1 : 0;
  const pixels = await loadPixels(info, level);
  const canvas = document.createElement("canvas");
  canvas.width = pixels.width;
  canvas.height = pixels.height;
  const { center, width } = openingWindow(info.display.presets || []);
  renderWindow(pixels, canvas, center, width, false);
  return { info, pixels, canvas, level, key: windowKey(center, width, false), full: null };
}

export class ImageCache {
  constructor() {
    this.entries = new Map();
  }

  /** {info, pixels, canvas, level, key} of an image, fetched and drawn once; the oldest are dropped. */
  get(imageId) {
    if (!this.entries.has(imageId)) {
      const promise = prepare(imageId);
      promise.catch(() => this.entries.delete(imageId));
      this.entries.set(imageId, promise);
      while (this.entries.size > CACHE_SIZE) this.entries.delete(this.entries.keys().next().value);
    } else {
      const promise = this.entries.get(imageId);
      this.entries.delete(imageId);
      this.entries.set(imageId, promise); // most recently used last
    }
    return this.entries.get(imageId);
  }

  prefetch(ids) {
    for (const id of ids) if (id != null) this.get(id).catch(() => {});
  }
}

export class Display {
  constructor(canvas, overlay) {
    this.view = new View(canvas);
    this.overlay = overlay;
    this.pixels = null;
    this.info = null;
    this.presets = [];
    this.center = 32768;
    this.width = 65536;
    this.invert = false;
    this.drag = null;
    this.frame = 0;
    this.windowDirty = true;
    this.onChange = () => {};
    canvas.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    new ResizeObserver(() => this.resized()).observe(canvas);
  }

  /** Show a cache entry through its opening window (already drawn on the entry's canvas), fitted. */
  show(entry) {
    this.entry = entry;
    this.info = entry.info;
    this.pixels = entry.pixels;
    this.presets = entry.info.display.presets || [];
    this.size = { width: entry.info.width, height: entry.info.height }; // original pixels, for boxes
    this.view.setImage(entry.info.width, entry.info.height, entry.canvas);
    this.view.resize();
    this.view.fit();
    this.reset(false);
    this.windowDirty = entry.key !== windowKey(this.center, this.width, this.invert);
    this.renderNow();
  }

  preset(name) {
    return this.presets.find((p) => p.name === name);
  }

  /** The first DICOM window of the file, else "auto". */
  reset(redraw = true) {
    const first = openingWindow(this.presets);
    this.setWindow(first.center, first.width, false);
    this.invert = false;
    if (redraw) this.render();
  }

  setWindow(center, width, redraw = true) {
    this.center = center;
    this.width = Math.max(1, width);
    this.windowDirty = true;
    if (redraw) this.render();
  }

  applyPreset(name) {
    const p = this.preset(name);
    if (p) this.setWindow(p.center, p.width);
  }

  toggleInvert() {
    this.invert = !this.invert;
    this.windowDirty = true;
    this.render();
  }

  fit() {
    this.view.fit();
    this.render();
  }

  oneToOne() {
    this.view.oneToOne();
    this.render();
  }

  /** Draw on the next animation frame (several changes in one frame draw once). */
  render() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.renderNow();
    });
  }

  get fullResolution() {
    return Boolean(this.entry) && this.entry.level === 0;
  }

  /** Zoomed past a halved image's own pixels: fetch the full resolution once, then draw from it. */
  sharpen() {
    const entry = this.entry;
    if (entry.level === 0 || entry.full || this.view.scale * entry.info.width <= entry.pixels.width) return;
    entry.full = loadPixels(entry.info, 0).then((full) => {
      const canvas = document.createElement("canvas");
      canvas.width = full.width;
      canvas.height = full.height;
      Object.assign(entry, { pixels: full, canvas, level: 0, key: null });
      if (this.entry === entry) {
        this.pixels = full;
        this.view.source = canvas;
        this.windowDirty = true;
        this.render();
      }
    });
    entry.full.catch(() => (entry.full = null));
  }

  renderNow() {
    if (!this.pixels) return;
    this.sharpen();
    if (this.windowDirty) {
      renderWindow(this.pixels, this.view.source, this.center, this.width, this.invert);
      this.entry.key = windowKey(this.center, this.width, this.invert);
      this.windowDirty = false;
    }
    this.view.draw(this.overlay);
    this.onChange();
  }

  resized() {
    if (!this.pixels) return;
    const wasFit = Math.abs(this.view.scale - Math.min(this.view.canvas.width / this.view.width, this.view.canvas.height / this.view.height)) < 1e-6;
    this.view.resize();
    if (wasFit) this.view.fit();
    this.renderNow();
  }

  wheel(event) {
    event.preventDefault();
    const [x, y] = this.view.eventPoint(event);
    this.view.zoomAt(x, y, Math.pow(1.0015, -event.deltaY));
    this.render();
  }

  /** Window by dragging: right / left moves width, up / down moves the level, in proportion to the width. */
  startWindow(event) {
    this.drag = { kind: "window", x: event.clientX, y: event.clientY, center: this.center, width: this.width };
  }

  startPan(event) {
    this.drag = { kind: "pan", x: event.clientX, y: event.clientY };
  }

  /** Handle a mouse move of a window or pan drag; false when no such drag is on. */
  move(event) {
    const d = this.drag;
    if (!d) return false;
    const dx = event.clientX - d.x;
    const dy = event.clientY - d.y;
    if (d.kind === "window") {
      const step = d.width / 250;
      this.setWindow(d.center + dy * step, d.width * Math.exp(dx / 250));
    } else {
      d.x = event.clientX;
      d.y = event.clientY;
      this.view.pan(dx, dy);
      this.render();
    }
    return true;
  }

  end() {
    const was = this.drag !== null;
    this.drag = null;
    return was;
  }

  /** The toolbar's window controls: presets, invert, reset, fit, 1:1 and the window shown as numbers. */
  controls() {
    const select = el("select", { id: "preset", "aria-label": "window preset" });
    const readout = el("span", { id: "window-readout", class: "readout" });
    select.addEventListener("change", () => {
      if (select.value) this.applyPreset(select.value);
      select.blur();
    });
    const update = () => {
      readout.textContent = `W ${Math.round(this.width)} · L ${Math.round(this.center)}${this.invert ? " · inverted" : ""}`;
      readout.dataset.center = String(this.center);
      readout.dataset.width = String(this.width);
      readout.dataset.invert = String(this.invert);
      readout.dataset.scale = String(this.view.scale);
    };
    const previous = this.onChange;
    this.onChange = () => {
      previous();
      update();
      const names = this.presets.map((p) => p.name).join("|");
      if (select.dataset.names !== names) {
        select.dataset.names = names;
        select.replaceChildren(el("option", { value: "" }, "window preset…"), ...this.presets.map((p) => el("option", { value: p.name }, p.name)));
      }
    };
    const button = (text, title, action) => el("button", { type: "button", title, onclick: (e) => (action(), e.currentTarget.blur()) }, text);
    return [
      select,
      button("Lung", "lung window (L)", () => this.applyPreset("lung")),
      button("Mediast.", "mediastinum window (M)", () => this.applyPreset("mediastinum")),
      button("Reset", "reset window (R)", () => this.reset()),
      button("Invert", "invert (I)", () => this.toggleInvert()),
      button("Fit", "fit to screen (F)", () => this.fit()),
      button("1:1", "one screen pixel per image pixel (1)", () => this.oneToOne()),
      readout,
    ];
  }

  /** Keys shared by both views; true when the key was one of them. */
  key(event) {
    const actions = {
      l: () => this.applyPreset("lung"),
      m: () => this.applyPreset("mediastinum"),
      r: () => this.reset(),
      i: () => this.toggleInvert(),
      f: () => this.fit(),
      1: () => this.oneToOne(),
      "+": () => (this.view.zoomAt(this.view.canvas.width / 2, this.view.canvas.height / 2, 1.25), this.render()),
      "-": () => (this.view.zoomAt(this.view.canvas.width / 2, this.view.canvas.height / 2, 0.8), this.render()),
    };
    const action = actions[event.key];
    if (!action || event.ctrlKey || event.metaKey || event.altKey) return false;
    action();
    return true;
  }
}

export const WINDOW_KEYS = [
  ["drag (window tool) or right-drag", "window / level: left-right width, up-down level"],
  ["L / M", "lung / mediastinum window"],
  ["R", "reset the window (the file's own)"],
  ["I", "invert"],
  ["wheel, + / -", "zoom"],
  ["middle-drag, Space + drag", "pan"],
  ["F / 1", "fit / one to one"],
];

/** The keyboard help dialog, toggled by ?. */
export function helpDialog(rows) {
  const dialog = el(
    "dialog",
    { id: "help" },
    el("h2", {}, "Keyboard"),
    el("table", {}, ...rows.map(([k, what]) => el("tr", {}, el("th", {}, k), el("td", {}, what)))),
    el("form", { method: "dialog" }, el("button", {}, "Close (Esc)")),
  );
  document.body.append(dialog);
  return {
    toggle() {
      if (dialog.open) dialog.close();
      else dialog.showModal();
    },
  };
}
