// Shared by every console page: the API with the page's CSRF token, units, and sign-out.
const N_PER_LBF = 4.4482216152605;

export const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, body) {
    super(typeof body?.detail === "string" ? body.detail : `request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

/** Call the JSON API as the signed-in person (cookie + CSRF header); throws ApiError. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    window.location.assign(`/console/login?next=${encodeURIComponent(window.location.pathname)}`);
    throw new ApiError(401, { detail: "signed out" });
  }
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** A GET of one page of a keyset-paged list: the items and the cursor of the next page (null at
 * the end), which the API sends in the X-Next-After header. */
export async function apiPage(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (response.status === 401) {
    window.location.assign(`/console/login?next=${encodeURIComponent(window.location.pathname)}`);
    throw new ApiError(401, { detail: "signed out" });
  }
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return { items: data, next: response.headers.get("X-Next-After") };
}

export const lbf = (newtons) => (newtons / N_PER_LBF).toFixed(1) + " lbf";
export const lbfValue = (newtons) => newtons / N_PER_LBF;

export function mmss(seconds) {
  const whole = Math.max(0, Math.round(seconds));
  return `${String(Math.floor(whole / 60)).padStart(2, "0")}:${String(whole % 60).padStart(2, "0")}`;
}

/** A fault in words, then what was measured, without saying the same thing twice. */
export function inWords(title, reason) {
  return !title || reason.includes(title) ? reason : `${title}: ${reason}`;
}

const clinicZone = document.querySelector('meta[name="time-zone"]')?.content || undefined;
const clock = new Intl.DateTimeFormat("en-US", {
  timeZone: clinicZone, hourCycle: "h23", timeZoneName: "short",
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
});

/** A moment in the clinic's zone with the zone named, as the command line prints it
 * ("2026-11-28 09:05 CST"): UTC stays in the data, people read the clinic's clock. */
export function localTime(iso) {
  if (!iso) return "-";
  const part = Object.fromEntries(clock.formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute} ${part.timeZoneName}`;
}

let toastTimer = null;

/** A short message in the corner; it clears itself so it never hides a chart for long. */
export function toast(message) {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.textContent = ""), 5000);
}

/** The `detail` of a refusal as one line (FastAPI's lists of {loc, msg} included). */
export function describe(error) {
  const detail = error.body?.detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc ?? []).join(".")}: ${d.msg}`).join("; ");
  return error.message;
}

document.getElementById("sign-out")?.addEventListener("click", async () => {
  await api("POST", "/console/logout").catch(() => {});
  window.location.assign("/console/login");
});
