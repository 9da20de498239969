// A user's home: their projects, what is left in their queue, their progress, where to go next.
import { api, el, header, session } from "/ui/api.js";

function progressBar(done, total) {
  const share = total ? Math.round((100 * done) / total) : 0;
  return el(
    "div",
    { class: "progress", title: `${done} of ${total} done` },
    el("div", { class: "bar", style: `width:${share}%` }),
    el("span", {}, `${done} / ${total} done (${share} %)`),
  );
}

async function projectCard(project) {
  const queue = await api.get(`/api/projects/${project.id}/queue`);
  const reads = queue.tasks.filter((t) => t.kind === "read");
  const adjudications = queue.tasks.filter((t) => t.kind === "adjudicate");
  const count = (tasks, status) => tasks.filter((t) => t.status === status).length;
  const card = el(
    "section",
    { class: "card project", "data-project": project.id },
    el("h2", {}, project.name),
    el("p", { class: "muted" }, `labels: ${project.label_set}`),
  );
  if (reads.length) {
    card.append(
      el("h3", {}, "Reading"),
      el("p", {}, `${count(reads, "pending")} to read, ${count(reads, "done")} read`),
      progressBar(count(reads, "done"), reads.length),
      el("a", { class: "button", href: `/ui/viewer.html?project=${project.id}` }, "Read"),
    );
  }
  if (adjudications.length) {
    card.append(
      el("h3", {}, "Adjudication"),
      el("p", {}, `${count(adjudications, "pending")} to adjudicate, ${count(adjudications, "done")} done`),
      progressBar(count(adjudications, "done"), adjudications.length),
      el("a", { class: "button", href: `/ui/adjudicate.html?project=${project.id}` }, "Adjudicate"),
    );
  }
  if (!reads.length && !adjudications.length) card.append(el("p", { class: "muted" }, "Nothing assigned to you yet."));
  return card;
}

async function main() {
  const user = await session();
  const root = document.getElementById("home");
  root.before(header(user, "Home"));
  const projects = await api.get("/api/projects");
  if (!projects.length) root.append(el("p", {}, "You are in no project yet: ask an admin to add you."));
  for (const project of projects) root.append(await projectCard(project));
}

main();
