import { api, describe, toast } from "/console/static/common.js";

const form = document.getElementById("prescription");
const list = document.getElementById("violations");
const start = document.getElementById("start");
const confirmBox = form.querySelector(".confirm");

async function fill() {
  const [tables, patients, clinicians] = await Promise.all([
    api("GET", "/tables"),
    api("GET", "/patients"),
    api("GET", "/clinicians"),
  ]);
  for (const t of tables) form.table.add(new Option(`${t.name} (${t.device.model})`, t.name));
  const options = document.getElementById("patients");
  for (const p of patients) options.append(new Option(p.reference));
  for (const c of clinicians) form.treating_clinician_id.add(new Option(`${c.name}, ${c.credentials}`, c.id));
}

function body() {
  const codes = form.diagnosis_codes.value.split(/[\s,]+/).filter(Boolean);
  return {
    table: form.table.value,
    profile_name: form.profile_name.value,
    patient_reference: form.patient_reference.value.trim(),
    treating_clinician_id: Number(form.treating_clinician_id.value) || null,
    diagnosis_codes: codes,
    medical_necessity: form.medical_necessity.value.trim() || null,
    plan_of_care_ref: form.plan_of_care_ref.value.trim() || null,
    operator_confirmed: form.operator_confirmed.checked,
  };
}

function clearMarks() {
  list.replaceChildren();
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function show(violations) {
  clearMarks();
  for (const v of violations) {
    const item = document.createElement("li");
    item.className = v.severity === "block" ? "block" : "warn";
    item.textContent = `${v.severity === "block" ? "Blocks" : "Warning"}: ${v.field}: ${v.message}`;
    list.append(item);
    const name = String(v.field).split(".").pop();
    form.elements[name]?.setAttribute("aria-invalid", "true");
    if (/confirm/i.test(v.message)) confirmBox.hidden = false;
  }
}

function fieldErrors(error) {
  // every 422 is a refusal: {detail, violations: [{field, value, limit, message, severity}]}
  const violations = error.body?.violations;
  if (!Array.isArray(violations)) return false;
  show(violations.map((v) => ({ ...v, field: String(v.field).replace(/^body\./, "") })));
  return true;
}

document.getElementById("validate").addEventListener("click", async () => {
  start.disabled = true;
  try {
    const result = await api("POST", "/sessions/validate", body());
    show(result.violations);
    start.disabled = !result.ok;
    toast(result.ok ? "Nothing blocks this prescription: you may start." : "Fix what blocks, then validate again.");
  } catch (error) {
    if (!fieldErrors(error)) toast(describe(error));
  }
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const started = await api("POST", "/sessions", body());
    window.location.assign(`/console/live/${started.id ?? started.session_id}`);
  } catch (error) {
    if (!fieldErrors(error)) toast(describe(error));
  }
});

fill().catch((error) => toast(describe(error)));
