// The label picker: a list near the box, filtered as the reader types (prefix matches first), keys 1-9
// pick the n-th shown label, arrows move, Enter picks, Escape cancels.
import { el } from "/ui/api.js";

export function filterLabels(labels, typed) {
  const q = typed.trim().toLowerCase();
  if (!q) return labels.slice();
  const starts = labels.filter((l) => l.toLowerCase().startsWith(q));
  const words = labels.filter((l) => !starts.includes(l) && l.toLowerCase().split(/[\s/]+/).some((w) => w.startsWith(q)));
  const rest = labels.filter((l) => !starts.includes(l) && !words.includes(l) && l.toLowerCase().includes(q));
  return [...starts, ...words, ...rest];
}

export class Picker {
  constructor(container) {
    this.container = container;
    this.node = null;
  }

  get open() {
    return this.node !== null;
  }

  /** Show the picker at (x, y) in the container; resolves to a label, or null when cancelled. */
  choose(labels, x, y, current = null) {
    this.close();
    return new Promise((resolve) => {
      let shown = labels.slice();
      let active = Math.max(0, current ? labels.indexOf(current) : 0);
      const input = el("input", { type: "text", placeholder: "type to filter, 1-9 to pick", "aria-label": "label" });
      const list = el("ol", { class: "choices" });
      const finish = (label) => {
        this.close();
        resolve(label);
      };
      const render = () => {
        list.replaceChildren(
          ...shown.map((label, i) =>
            el(
              "li",
              { class: i === active ? "active" : "", onmousedown: (e) => (e.preventDefault(), finish(label)) },
              el("kbd", {}, i < 9 ? String(i + 1) : ""),
              label,
            ),
          ),
        );
        list.children[active]?.scrollIntoView({ block: "nearest" });
      };
      input.addEventListener("input", () => {
        shown = filterLabels(labels, input.value);
        active = 0;
        render();
      });
      input.addEventListener("keydown", (event) => {
        event.stopPropagation();
        if (/^[1-9]$/.test(event.key)) {
          event.preventDefault();
          const label = shown[Number(event.key) - 1];
          if (label) finish(label);
        } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          const step = event.key === "ArrowDown" ? 1 : -1;
          active = (active + step + shown.length) % Math.max(1, shown.length);
          render();
        } else if (event.key === "Enter") {
          event.preventDefault();
          if (shown[active]) finish(shown[active]);
        } else if (event.key === "Escape") {
          event.preventDefault();
          finish(null);
        }
      });
      input.addEventListener("blur", () => setTimeout(() => this.node && finish(null), 150));
      this.node = el("div", { class: "picker", role: "dialog" }, input, list);
      const bounds = this.container.getBoundingClientRect();
      this.node.style.left = `${Math.min(Math.max(0, x), bounds.width - 260)}px`;
      this.node.style.top = `${Math.min(Math.max(0, y), bounds.height - 320)}px`;
      this.container.append(this.node);
      render();
      input.focus();
    });
  }

  close() {
    if (this.node) {
      const node = this.node;
      this.node = null;
      node.remove();
    }
  }
}
