// The service's JSON API as the pages use it: same-origin fetch, the session cookie sent by the browser,
// the CSRF token (kept in memory only, fetched from /api/me on every page load) on every write.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

async function call(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken || "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !path.endsWith("/login")) {
    toLogin();
    return new Promise(() => {}); // the page is going to the login: nothing more to do here
  }
  if (!response.ok) {
    let detail = "";
    try {
      const data = await response.json();
      detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    } catch {
      detail = response.statusText;
    }
    throw new ApiError(response.status, detail);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.arrayBuffer();
}

export const api = {
  get: (path) => call("GET", path),
  post: (path, body) => call("POST", path, body),
  patch: (path, body) => call("PATCH", path, body),
  put: (path, body) => call("PUT", path, body),
  del: (path) => call("DELETE", path),
  setCsrf(token) {
    csrfToken = token;
  },
};

export function toLogin() {
  const here = location.pathname + location.search;
  location.href = `/ui/login.html?next=${encodeURIComponent(here)}`;
}

/** The logged-in user (and the page's CSRF token), or a redirect to the login page. */
export async function session() {
  const me = await api.get("/api/me");
  csrfToken = me.csrf_token;
  return me.user;
}

export async function logout() {
  try {
    await api.post("/api/logout");
  } finally {
    location.href = "/ui/login.html";
  }
}

/** A DOM element from a tag, attributes and children (strings become text: never parsed as HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value != null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function param(name) {
  return new URLSearchParams(location.search).get(name);
}

/** The header every page shows: the app's name, the user, links home / admin, log out. */
export function header(user, title) {
  const links = [el("a", { href: "/ui/home.html" }, "Home")];
  if (user.role === "admin") links.push(el("a", { href: "/ui/admin.html" }, "Admin"));
  return el(
    "header",
    { class: "top" },
    el("strong", {}, "cxrlab"),
    el("span", { class: "title" }, title),
    el("nav", {}, ...links),
    el("span", { class: "user" }, `${user.name} (${user.role})`),
    el("button", { type: "button", onclick: logout }, "Log out"),
  );
}
