// Autosave: each change is one request, sent in order (a box's later changes need the id its creation got).
// The state shows saved / saving / failed. A failed request (network, server error) stays at the head of the
// queue until the reader presses retry; a 409 (changed meanwhile) or a refused write reloads the image's
// marks from the service, so the screen shows what is stored, and the state says "reloaded" until the next save.
import { el } from "/ui/api.js";

/** The visible state of the autosave: saved / saving… / save failed (with Retry) / reloaded. */
export function savingState(retry) {
  const text = el("span", { id: "save-state", "data-state": "saved" }, "✓ saved");
  const button = el("button", { type: "button", id: "retry", hidden: true, onclick: retry }, "Retry");
  const show = (kind, message) => {
    text.dataset.state = kind;
    text.textContent = { saved: "✓ saved", saving: "saving…", failed: "save failed", stale: "reloaded" }[kind];
    text.title = message || "";
    button.hidden = kind !== "failed";
  };
  return { node: el("span", { class: "save" }, text, button), show };
}

export class Saver {
  constructor(onState, onStale) {
    this.queue = [];
    this.running = false;
    this.failed = null;
    this.onState = onState;
    this.onStale = onStale;
  }

  /** ``operation`` is an async function doing one write; ``context`` is handed to ``onStale``. */
  add(operation, context) {
    this.queue.push({ operation, context });
    this.run();
  }

  retry() {
    this.failed = null;
    this.run();
  }

  get pending() {
    return this.queue.length;
  }

  async run() {
    if (this.running || this.failed) return;
    this.running = true;
    let stale = null;
    while (this.queue.length && !this.failed) {
      this.onState("saving");
      const head = this.queue[0];
      try {
        await head.operation();
        this.queue.shift();
      } catch (exc) {
        if (exc.status && exc.status >= 400 && exc.status < 500 && exc.status !== 401 && exc.status !== 429) {
          this.queue.shift(); // refused for good (409 stale, 422 invalid): show the stored truth instead
          stale = exc.message;
          await this.onStale(head.context, exc);
        } else {
          this.failed = exc;
        }
      }
    }
    this.running = false;
    if (this.failed) this.onState("failed", this.failed.message);
    else if (stale) this.onState("stale", stale); // stays shown until the next save
    else if (!this.queue.length) this.onState("saved");
  }

  /** Resolves once everything queued so far is stored (or a failure stops the queue). */
  async settled() {
    while (this.running || (this.queue.length && !this.failed)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return !this.failed;
  }
}
