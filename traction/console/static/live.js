import { api, describe, inWords, lbf, lbfValue, mmss, toast } from "/console/static/common.js";
import { Chart } from "/console/static/chart.js";

const root = document.getElementById("live");
const sessionId = root.dataset.session;
const canRun = root.dataset.canRun === "True";
const canAck = root.dataset.canAck === "True";
const $ = (id) => document.getElementById(id);
const whole = new Chart($("chart-all"));
const recent = new Chart($("chart-recent"), { windowS: 30 });
const form = $("settings");
const N_PER_LBF = 4.4482216152605;
let t0 = null, totalS = null, peak = 0, points = 0, lastT = 0;
let profile = null; // the profile in force (newtons, seconds), as the started/settings_changed records give it
let table = null; // the workstation's name for this session's table (GET /tables/{name})
let tableLabel = null, tableSerial = null; // as the session recorded them

async function tableName() {
  // The record labels the table "name (url)"; the workstation knows it by name, the lock by serial.
  if (table || !tableLabel) return table;
  const tables = await api("GET", "/tables");
  const mine = tables.find((t) => tableLabel === t.name || tableLabel.startsWith(`${t.name} (`))
    ?? tables.find((t) => tableSerial && t.device.serial_number === tableSerial);
  table = mine?.name ?? null;
  return table;
}
let lockWatch = null;
let ended = false; // the finished record arrived, or the store says the session ended
let runWatch = null;

async function control(action) {
  try {
    const result = await api("POST", `/sessions/${sessionId}/${action}`);
    toast(result.detail);
  } catch (error) {
    toast(describe(error));
  }
}

for (const action of ["release", "stop", "pause", "resume"]) {
  $(action).addEventListener("click", () => control(action));
}
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") control("release");
});

// --- the trip reason, in words, until someone acknowledges it ------------------------------------

function alarm(text) {
  $("alarm").textContent = text;
  $("alarm-card").hidden = false;
}

function tripWords(doc) {
  return `Tripped: ${inWords(doc.data?.fault_title, doc.reason)}. The table is released.`;
}

let lockSeen = false, lockPolls = 0;

async function watchLock() {
  // A lock-severity trip locks the table until someone who may run it acknowledges it; the lock
  // is written as the trip is published, so look for it a few times before deciding there is none.
  let found;
  try {
    if (!(await tableName())) return;
    found = await api("GET", `/tables/${encodeURIComponent(table)}`);
  } catch (error) {
    return;
  }
  lockPolls += 1;
  const lock = found.alarms.find((a) => a.session_id === sessionId) ?? found.alarms[0];
  if (lock) {
    lockSeen = true;
    alarm(`Table ${table} is LOCKED: ${inWords(lock.fault_title, lock.reason)}. No session starts on it until someone checks the patient and the table and acknowledges.`);
    $("ack").hidden = !canAck;
  } else if (lockSeen) {
    stopLockWatch();
    $("ack").hidden = true;
    if (!$("ack-done").textContent) $("ack-done").textContent = `Table ${table}: the alarm was acknowledged.`;
  } else if (lockPolls >= 5) {
    stopLockWatch(); // a trip that does not lock: its reason stays shown on this page
  }
}

function startLockWatch() {
  if (!lockWatch) lockWatch = setInterval(watchLock, 2000);
  watchLock();
}

function stopLockWatch() {
  clearInterval(lockWatch);
  lockWatch = null;
}

$("ack").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("ack-why");
  const why = input.value.trim();
  if (!why) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  input.removeAttribute("aria-invalid");
  try {
    const done = await api("POST", `/tables/${encodeURIComponent(table)}/ack`, { reason: why });
    $("ack-done").textContent = `Acknowledged by ${done.acknowledged_by}: ${done.reason}`;
    $("ack").hidden = true;
    $("alarm").textContent += " (acknowledged)";
    lockSeen = false;
    stopLockWatch();
  } catch (error) {
    toast(describe(error));
  }
});

// --- the live settings change ----------------------------------------------------------------------

const num = (x, digits = 1) => (x === null || x === undefined ? "" : String(Number(x.toFixed(digits))));

function describeProfile(p) {
  const rest = p.mode === "intermittent" ? `, rest ${lbf(p.rest_force_n ?? 0)} for ${p.rest_s} s` : "";
  return `${p.mode}, hold ${lbf(p.hold_force_n)} for ${p.hold_s} s${rest}, ${mmss(p.total_s)} total, ramp ${num(p.ramp_n_per_s / N_PER_LBF)} lbf/s`;
}

function showProfile(p) {
  profile = p;
  $("profile-now").textContent = describeProfile(p);
  form.hold_force.value = num(lbfValue(p.hold_force_n));
  form.rest_force.value = num(lbfValue(p.rest_force_n ?? 0));
  form.hold_s.value = num(p.hold_s);
  form.rest_s.value = num(p.rest_s ?? 0);
  form.total_min.value = num(p.total_s / 60, 2);
  form.ramp_rate.value = num(p.ramp_n_per_s / N_PER_LBF);
  const intermittent = p.mode === "intermittent";
  form.rest_force.disabled = form.rest_s.disabled = !intermittent;
}

const ALIASES = { hold_force_n: "hold_force", rest_force_n: "rest_force", ramp_n_per_s: "ramp_rate", total_s: "total_min", operator_confirmed: "reason" };

function clearMarks() {
  $("settings-violations").replaceChildren();
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
}

function showViolations(violations) {
  clearMarks();
  for (const v of violations) {
    const last = String(v.field).split(".").pop();
    const name = ALIASES[last] ?? last;
    const words = `${v.severity === "block" ? "Refused" : "Warning"}: ${v.message}`;
    const slot = $(`set-${name}-error`);
    if (slot && form.elements[name]) {
      slot.textContent = slot.textContent ? `${slot.textContent} ${words}` : words;
      if (v.severity === "block") form.elements[name].setAttribute("aria-invalid", "true");
    } else {
      const item = document.createElement("li");
      item.className = v.severity === "block" ? "block" : "warn";
      item.textContent = `${words} (${v.field})`;
      $("settings-violations").append(item);
    }
    if (/confirm/i.test(v.message)) form.querySelector(".confirm").hidden = false;
  }
  form.querySelector("[aria-invalid]")?.focus();
}

function numeric(input) {
  // a number when it reads as one; otherwise the text as typed, so the API's refusal names it
  const text = input.value.trim();
  const value = Number(text);
  return text !== "" && Number.isFinite(value) ? value : text;
}

function requested() {
  const p = profile;
  const body = {
    mode: p.mode,
    region: p.region,
    hold_force: `${form.hold_force.value.trim()} lbf`,
    hold_s: numeric(form.hold_s),
    total_min: numeric(form.total_min),
    ramp_rate: `${form.ramp_rate.value.trim()} lbf/s`,
    progression_steps: p.progression_steps,
    regression_steps: p.regression_steps,
    step_rest_fraction: p.step_rest_fraction,
  };
  if (p.mode === "intermittent") {
    body.rest_force = `${form.rest_force.value.trim()} lbf`;
    body.rest_s = numeric(form.rest_s);
  }
  if (p.position) body.position = p.position;
  if (p.angle_deg !== null && p.angle_deg !== undefined) body.angle_deg = p.angle_deg;
  if (p.name) body.name = p.name;
  return body;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!profile) return;
  const reason = form.reason.value.trim();
  try {
    const result = await api("POST", `/sessions/${sessionId}/settings`, {
      profile: requested(),
      operator_confirmed: form.operator_confirmed.checked,
      ...(reason ? { reason } : {}),
    });
    showViolations(result.violations);
    form.querySelector(".confirm").hidden = true;
    form.operator_confirmed.checked = false;
    toast(`Settings accepted: ${result.detail}`);
  } catch (error) {
    if (Array.isArray(error.body?.violations)) showViolations(error.body.violations);
    else toast(describe(error));
  }
});

// --- telemetry -------------------------------------------------------------------------------------

function onRecord({ name, doc }) {
  if (name === "started") {
    t0 = doc.t;
    tableLabel = doc.table;
    tableSerial = doc.device?.serial_number ?? null;
    totalS = doc.profile?.total_s ?? null;
    const limit = doc.extra?.hard_limit_n;
    if (limit) {
      $("limit").textContent = lbf(limit);
      whole.maxLbf = recent.maxLbf = lbfValue(limit);
    }
    if (doc.profile) showProfile(doc.profile);
    $("settings-card").hidden = !canRun;
    $("status").textContent = "running";
    if (!runWatch) runWatch = setInterval(checkRunning, 2000);
  } else if (name === "sample") {
    const t = doc.t - (t0 ?? doc.t);
    lastT = t;
    points += 1;
    peak = Math.max(peak, doc.measured_n);
    whole.add(t, lbfValue(doc.target_n), lbfValue(doc.measured_n));
    recent.add(t, lbfValue(doc.target_n), lbfValue(doc.measured_n));
    $("measured").textContent = lbf(doc.measured_n);
    $("target").textContent = lbf(doc.target_n);
    $("phase").textContent = doc.phase;
    $("cycle").textContent = `cycle ${doc.cycle}`;
    $("elapsed").textContent = mmss(t);
    $("remaining").textContent = totalS === null ? "-" : mmss(totalS - t);
    $("peak").textContent = lbf(peak);
    $("points").textContent = String(points);
  } else if (name === "event") {
    if (doc.kind === "trip") {
      alarm(tripWords(doc));
      startLockWatch();
    } else if (["stop_switch", "fault", "link_lost"].includes(doc.kind)) alarm(`${doc.kind.replace("_", " ")}: ${doc.reason}`);
    if (doc.kind === "pause") $("status").textContent = "paused: force held";
    if (doc.kind === "resume") $("status").textContent = "running";
    if (doc.kind === "released") $("status").textContent = "table released: no traction force is applied";
    if (doc.kind === "settings_changed" && doc.data?.new) {
      const t = t0 === null ? lastT : doc.t - t0;
      whole.mark(t);
      recent.mark(t);
      showProfile(doc.data.new);
      totalS = doc.data.new.total_s ?? totalS;
    }
  } else if (name === "finished") {
    finished(doc.outcome, doc.reason);
  }
}

function finished(outcome, reason) {
  if (ended) return;
  ended = true;
  clearInterval(runWatch);
  $("status").textContent = `finished (${outcome}): ${reason}; the table is released`;
  $("measured").textContent = "-";
  $("target").textContent = "-";
  $("remaining").textContent = "-";
  $("settings-card").hidden = true;
  if (outcome === "tripped") recall();
}

async function checkRunning() {
  // The telemetry stream is the fast path; the table's own report is the check that the session
  // still runs there (a stream joined just as the session ended may never carry its end).
  if (ended) return;
  let found;
  try {
    if (!(await tableName())) return;
    found = await api("GET", `/tables/${encodeURIComponent(table)}`);
  } catch (error) {
    return;
  }
  if (found.live?.session_id === sessionId || ended) return;
  try {
    const detail = await api("GET", `/sessions/${sessionId}?limit=1`);
    if (detail.outcome) finished(detail.outcome, detail.outcome_reason);
  } catch (error) {
    toast(describe(error));
  }
}

async function recall() {
  // A tripped session read back (the page opened after it ended): the trip in words, and its lock.
  let detail;
  try {
    detail = await api("GET", `/sessions/${sessionId}?limit=1`);
  } catch (error) {
    return;
  }
  tableLabel = tableLabel ?? detail.table_label;
  tableSerial = tableSerial ?? detail.device_serial;
  const trip = detail.events.find((e) => e.kind === "trip");
  if (trip && $("alarm-card").hidden) alarm(tripWords(trip));
  startLockWatch();
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/sessions/${sessionId}/telemetry`);
  socket.addEventListener("message", (message) => onRecord(JSON.parse(message.data)));
  socket.addEventListener("close", (event) => {
    if (event.code >= 4000) $("status").textContent = `telemetry refused (${event.code}): ${event.reason}`;
    else if (!$("status").textContent.startsWith("finished")) $("status").textContent = "telemetry ended";
  });
}

connect();
