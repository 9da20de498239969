// Admin pages: projects (create, members), users, import and its progress, agreement per label, export.
// One page with tabs; every action is an API call of the admin routes (CSRF header included by api.js).
import { api, el, header, session } from "/ui/api.js";

const state = { projects: [], project: null, tab: "project", renders: 0, notice: null };
const root = () => document.getElementById("admin");

/** A table of ``rows``; a column is [key, title] or [key, title, digits] for a right-aligned number. */
function table(columns, rows) {
  const numeric = (column) => column.length > 2;
  return el(
    "table",
    { class: "data" },
    el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { class: numeric(c) ? "num" : "" }, c[1])))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...columns.map((c) => cell(row[c[0]], c[2]))))),
  );
}

function cell(value, digits) {
  if (value == null) return el("td", { class: digits == null ? "" : "num" }, "–");
  if (digits != null) return el("td", { class: "num" }, Number(value).toFixed(digits));
  return el("td", {}, String(value));
}

/** A form whose submit calls ``action(values)``: its answer is shown above the page drawn again (with the
 * change in it), an error under the form (whose values stay for a correction). */
function form(fields, submitText, action) {
  const message = el("p", { class: "message" });
  const node = el(
    "form",
    { class: "inline" },
    ...fields.map(([name, label, attrs = {}]) =>
      el("label", {}, label, attrs.options ? el("select", { name }, ...attrs.options.map((o) => el("option", { value: o }, o))) : el("input", { name, ...attrs })),
    ),
    el("button", { type: "submit", class: "primary" }, submitText),
  );
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(node).entries());
    message.className = "message";
    message.textContent = "working…";
    try {
      state.notice = (await action(values, (text) => (message.textContent = text))) || "done";
      await show();
    } catch (exc) {
      message.className = "message error";
      message.textContent = exc.message;
    }
  });
  return el("div", {}, node, message);
}

async function projectTab() {
  const p = state.project;
  const parts = [
    el("h2", {}, "New project"),
    form(
      [["name", "name", { required: true }], ["labels", "labels", { options: ["vindr", "nih"] }], ["readers", "readers (train)", { type: "number", value: 3, min: 1, max: 20 }], ["test_readers", "readers (test)", { type: "number", value: 5, min: 1, max: 20 }]],
      "Create",
      async (v) => {
        const made = await api.post("/api/projects", { name: v.name, labels: v.labels, readers: Number(v.readers), test_readers: Number(v.test_readers) });
        state.projects = await api.get("/api/projects");
        state.project = await api.get(`/api/projects/${made.id}`);
        return `project ${made.name} created`;
      },
    ),
  ];
  if (p) {
    const members = await api.get(`/api/projects/${p.id}/members`);
    parts.push(
      el("h2", {}, `Project ${p.name}`),
      el("p", {}, `labels ${p.label_set} (${p.labels.length}) · ${p.readers} readers per training image · ${p.test_readers} per test image · proposals ${p.allow_proposals ? "shown" : "off"}`),
      el("h3", {}, "Members"),
      table([["user", "user"], ["role", "role"], ["pseudonym", "reader id in exports"]], members),
      form([["user", "user name", { required: true }]], "Add member", async (v) => {
        const added = await api.post(`/api/projects/${p.id}/members`, { user: v.user });
        return `${added.user} added as ${added.pseudonym}`;
      }),
    );
  }
  return parts;
}

async function usersTab() {
  const users = await api.get("/api/users");
  return [
    el("h2", {}, "Users"),
    table([["id", "id"], ["name", "name"], ["role", "role"], ["active", "active"]], users),
    el("h3", {}, "New user"),
    form(
      [["name", "name", { required: true }], ["role", "role", { options: ["radiologist", "adjudicator", "admin"] }], ["password", "password (8+)", { type: "password", required: true, minlength: 8 }]],
      "Add user",
      async (v) => {
        const made = await api.post("/api/users", v);
        return `user ${made.name} added`;
      },
    ),
  ];
}

function progressRows(progress) {
  const rows = [];
  for (const [split, kinds] of Object.entries(progress.tasks)) {
    for (const [kind, statuses] of Object.entries(kinds)) {
      const done = statuses.done || 0;
      const pending = statuses.pending || 0;
      rows.push({ split, kind, done, pending, share: `${Math.round((100 * done) / Math.max(1, done + pending))} %` });
    }
  }
  return rows;
}

/** Poll an import job (it runs in a process of its own) until it ends, saying its stage and progress. */
async function waitJob(job, say) {
  while (job.status === "queued" || job.status === "running") {
    say(`${job.stage}: ${job.done} of ${job.total}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    job = await api.get(job.status_url);
  }
  return job;
}

async function importTab() {
  const p = state.project;
  const progress = await api.get(`/api/projects/${p.id}/progress`);
  const images = Object.entries(progress.images).map(([split, n]) => `${split}: ${n}`).join(" · ") || "none yet";
  return [
    el("h2", {}, `Import into ${p.name}`),
    el("p", { class: "muted" }, "A folder on the server: DICOMs, NIH PNGs, or a tables folder. Originals are referenced, never copied."),
    form([["source", "folder on the server", { required: true, size: 60 }], ["split", "split (else from the folder names)"]], "Import", async (v, say) => {
      const job = await waitJob(await api.post(`/api/projects/${p.id}/import`, { source: v.source, split: v.split || null }), say);
      if (job.status !== "done") throw new Error(`import failed: ${job.message}`);
      const report = job.result;
      const problems = report.problem_list.length ? ` · problems: ${report.problem_list.join("; ")}` : "";
      return `${report.added} added, ${report.already_there} already there, ${report.assignments} tasks assigned${problems}`;
    }),
    el("h2", {}, "Progress"),
    el("p", {}, `images ${images}`),
    table([["split", "split"], ["kind", "task"], ["done", "done", 0], ["pending", "pending", 0], ["share", "done %"]], progressRows(progress)),
  ];
}

async function agreementTab() {
  const a = await api.get(`/api/projects/${state.project.id}/agreement`);
  if (!a.available) return [el("h2", {}, "Agreement"), el("p", {}, a.reason)];
  const o = a.overall;
  const fmt = (v) => (v == null ? "–" : v.toFixed(3));
  return [
    el("h2", {}, "Agreement of the finished reads"),
    el("p", {}, `pooled kappa ${fmt(o.kappa_pooled)} · mean kappa ${fmt(o.kappa_mean)} · box F1 ${fmt(o.box_f1)} · mean IoU ${fmt(o.mean_iou)} · images with several readers: ${a.info.images_with_several_readers}`),
    table([["label", "label"], ["images_reported", "images reported", 0], ["kappa", "Fleiss kappa", 3], ["boxes", "boxes", 0], ["box_f1", "box F1", 3], ["mean_iou", "mean IoU", 3]], a.labels),
  ];
}

function csv(rows) {
  if (!rows.length) return "";
  const columns = Object.keys(rows[0]);
  const quote = (v) => (v == null ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
  return [columns.join(","), ...rows.map((r) => columns.map((c) => quote(r[c])).join(","))].join("\n") + "\n";
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function exportTab() {
  const p = state.project;
  const out = el("div", { id: "export-result" });
  const run = async () => {
    out.textContent = "exporting…";
    const tables = await api.get(`/api/projects/${p.id}/export`);
    download(`${p.name}-images.csv`, csv(tables.images));
    download(`${p.name}-findings.csv`, csv(tables.findings));
    const readers = new Set(tables.findings.map((f) => f.reader));
    out.replaceChildren(el("p", {}, `${tables.images.length} images, ${tables.findings.length} findings from ${[...readers].sort().join(", ") || "no reader"} (readers pseudonymous; adjudicated labels as reader "consensus")`));
  };
  return [
    el("h2", {}, `Export ${p.name}`),
    el("p", { class: "muted" }, "The two tables (images, findings) of the finished reads and the consensus, as CSV; the CLI writes Parquet (cxrlab annotate export). Every export is audited."),
    el("button", { type: "button", class: "primary", id: "export", onclick: () => run().catch((e) => (out.textContent = e.message)) }, "Export"),
    out,
  ];
}

const TABS = [
  ["project", "Project setup", projectTab],
  ["users", "Users", usersTab],
  ["import", "Import & progress", importTab],
  ["agreement", "Agreement", agreementTab],
  ["export", "Export", exportTab],
];

async function show() {
  const ticket = ++state.renders; // a slower earlier render must not replace a later one
  const needsProject = state.tab !== "project" && state.tab !== "users";
  const picker = el("select", { id: "project", "aria-label": "project", onchange: (e) => load(Number(e.target.value)) }, ...state.projects.map((p) => el("option", { value: p.id, selected: state.project && p.id === state.project.id }, p.name)));
  const tabs = el("nav", { class: "tabs" }, ...TABS.map(([key, title]) => el("button", { type: "button", class: key === state.tab ? "on" : "", "data-tab": key, onclick: () => ((state.tab = key), show()) }, title)), el("span", { class: "sep" }), picker);
  const body = needsProject && !state.project ? [el("p", {}, "Create a project first.")] : await TABS.find(([key]) => key === state.tab)[2]();
  if (ticket !== state.renders) return;
  const notice = state.notice ? el("p", { id: "notice", class: "notice" }, state.notice) : null;
  state.notice = null;
  root().replaceChildren(tabs, el("section", { class: "card" }, notice, ...body));
}

async function load(projectId) {
  state.projects = await api.get("/api/projects");
  const id = projectId || state.project?.id || state.projects[0]?.id;
  state.project = id ? await api.get(`/api/projects/${id}`) : null;
  await show();
}

async function main() {
  const user = await session();
  root().before(header(user, "Admin"));
  if (user.role !== "admin") {
    root().append(el("p", {}, "Admins only."));
    return;
  }
  await load(null);
}

main();
