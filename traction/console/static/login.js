const form = document.getElementById("sign-in");
const error = document.getElementById("sign-in-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const response = await fetch("/console/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({ user: form.user.value, password: form.password.value }),
  });
  if (response.ok) {
    window.location.assign(form.dataset.next || "/console/");
    return;
  }
  const body = await response.json().catch(() => ({}));
  error.textContent = typeof body.detail === "string" ? body.detail : "Sign-in failed; check the name and password.";
  form.password.value = "";
  form.password.focus();
});
