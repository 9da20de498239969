// The image on a canvas: zoom and pan as one transform (screen = image * scale + offset), fit and 1:1,
// and the conversions between screen and original image pixels that every box goes through.

export class View {
  constructor(canvas) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.source = null; // a canvas of the image's size: its windowed pixels
    this.width = 0;
    this.height = 0;
    this.scale = 1;
    this.offsetX = 0;
    this.offsetY = 0;
  }

  /** The image to show: ``source`` is a canvas of its size holding the windowed pixels. */
  setImage(width, height, source) {
    this.width = width;
    this.height = height;
    this.source = source;
  }

  resize() {
    const box = this.canvas.getBoundingClientRect();
    this.canvas.width = Math.max(1, Math.round(box.width));
    this.canvas.height = Math.max(1, Math.round(box.height));
  }

  fit() {
    const s = Math.min(this.canvas.width / this.width, this.canvas.height / this.height);
    this.scale = s;
    this.offsetX = (this.canvas.width - this.width * s) / 2;
    this.offsetY = (this.canvas.height - this.height * s) / 2;
  }

  /** One screen pixel per image pixel, whole-pixel offsets (no resampling), the image centred. */
  oneToOne() {
    this.scale = 1;
    this.offsetX = Math.round((this.canvas.width - this.width) / 2);
    this.offsetY = Math.round((this.canvas.height - this.height) / 2);
  }

  zoomAt(x, y, factor) {
    const scale = Math.min(32, Math.max(0.02, this.scale * factor));
    const [ix, iy] = this.toImage(x, y);
    this.scale = scale;
    this.offsetX = x - ix * scale;
    this.offsetY = y - iy * scale;
  }

  pan(dx, dy) {
    this.offsetX += dx;
    this.offsetY += dy;
  }

  toImage(x, y) {
    return [(x - this.offsetX) / this.scale, (y - this.offsetY) / this.scale];
  }

  toScreen(x, y) {
    return [x * this.scale + this.offsetX, y * this.scale + this.offsetY];
  }

  /** Mouse position on the canvas, in canvas pixels. */
  eventPoint(event) {
    const box = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * this.canvas.width) / box.width,
      ((event.clientY - box.top) * this.canvas.height) / box.height,
    ];
  }

  draw(overlay) {
    const c = this.context;
    c.setTransform(1, 0, 0, 1, 0, 0);
    c.fillStyle = "#000";
    c.fillRect(0, 0, this.canvas.width, this.canvas.height);
    c.imageSmoothingEnabled = (this.scale * this.width) / this.source.width < 1; // exact pixels when enlarged
    c.drawImage(this.source, this.offsetX, this.offsetY, this.width * this.scale, this.height * this.scale);
    if (overlay) overlay(c);
  }
}

/** Clamp a box [x0, y0, x1, y1] (any corner order) into the image; null when it has no area left. */
export function normalBox(box, width, height) {
  const x0 = Math.max(0, Math.min(box[0], box[2]));
  const x1 = Math.min(width, Math.max(box[0], box[2]));
  const y0 = Math.max(0, Math.min(box[1], box[3]));
  const y1 = Math.min(height, Math.max(box[1], box[3]));
  const round = (v) => Math.round(v * 10) / 10;
  return x1 - x0 >= 1 && y1 - y0 >= 1 ? [round(x0), round(y0), round(x1), round(y1)] : null;
}

/** The box a move or resize drag gives at image point (ix, iy): ``drag.before`` is the box when it started,
 * ``drag.from`` the point grabbed (a move stays inside the image), ``drag.handle`` the corner (a resize). */
export function draggedBox(drag, ix, iy, width, height) {
  const b = drag.before;
  if (drag.kind === "move") {
    const dx = Math.max(-b[0], Math.min(width - b[2], ix - drag.from[0]));
    const dy = Math.max(-b[1], Math.min(height - b[3], iy - drag.from[1]));
    return [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy];
  }
  const box = b.slice();
  box[drag.handle[0]] = ix;
  box[drag.handle[1]] = iy;
  return normalBox(box, width, height);
}

export function inside(box, x, y) {
  return x >= box[0] && x <= box[2] && y >= box[1] && y <= box[3];
}

/** Which corner handle of ``box`` is under screen point (x, y), as [ix, iy] indices into the box, or null. */
export function handleAt(view, box, x, y, reach = 7) {
  for (const ix of [0, 2]) {
    for (const iy of [1, 3]) {
      const [sx, sy] = view.toScreen(box[ix], box[iy]);
      if (Math.abs(sx - x) <= reach && Math.abs(sy - y) <= reach) return [ix, iy];
    }
  }
  return null;
}

export function strokeBox(c, view, box, colour, options = {}) {
  const [x0, y0] = view.toScreen(box[0], box[1]);
  const [x1, y1] = view.toScreen(box[2], box[3]);
  c.save();
  c.strokeStyle = colour;
  c.lineWidth = options.width || 2;
  c.setLineDash(options.dash || []);
  c.strokeRect(x0, y0, x1 - x0, y1 - y0);
  if (options.handles) {
    c.fillStyle = colour;
    for (const [hx, hy] of [[x0, y0], [x1, y0], [x0, y1], [x1, y1]]) c.fillRect(hx - 4, hy - 4, 8, 8);
  }
  if (options.text) {
    c.font = "13px sans-serif";
    const w = c.measureText(options.text).width + 6;
    c.fillStyle = "rgba(0,0,0,0.65)";
    c.fillRect(x0, y0 - 18, w, 17);
    c.fillStyle = colour;
    c.fillText(options.text, x0 + 3, y0 - 5);
  }
  c.restore();
}
