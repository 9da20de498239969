// Login: the session cookie is set by the service (HttpOnly); the page goes where it was sent from.
// The button stays disabled until the submit handler below is attached: a click before this module ran
// would submit the form natively, reloading the login page (and, without method="post", with the password
// in its URL).
import { api, param } from "/ui/api.js";

const form = document.getElementById("login");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("error");
  error.textContent = "";
  try {
    await api.post("/api/login", { name: form.name.value, password: form.password.value });
    const next = param("next");
    location.href = next && next.startsWith("/ui/") ? next : "/ui/home.html";
  } catch (exc) {
    error.textContent = exc.message;
  }
});
form.querySelector("button[type=submit]").disabled = false;
