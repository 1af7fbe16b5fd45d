import { api, describe, lbf, lbfValue, localTime, toast } from "/console/static/common.js";
import { Chart } from "/console/static/chart.js";

const root = document.getElementById("detail");
const id = root.dataset.session;
const chart = new Chart(document.getElementById("chart"));

function fact(name, value) {
  const dl = document.getElementById("facts");
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value ?? "-";
  dl.append(dt, dd);
}

async function samples(t0) {
  let after = -1;
  for (;;) {
    const page = await api("GET", `/sessions/${id}/samples?after_seq=${after}&limit=5000`);
    for (const s of page.items) chart.add(s.t - t0, lbfValue(s.target_n), lbfValue(s.measured_n));
    if (page.next_after_seq === null || page.next_after_seq === undefined) return;
    after = page.next_after_seq;
  }
}

async function load() {
  const detail = await api("GET", `/sessions/${id}?limit=1`);
  document.getElementById("facts").replaceChildren();
  fact("Started", localTime(detail.started_at));
  fact("Ended", localTime(detail.ended_at));
  fact("Table", `${detail.table_label} (${detail.device_model} ${detail.device_serial})`);
  fact("Outcome", `${detail.outcome ?? "running"}${detail.outcome_reason ? ": " + detail.outcome_reason : ""}`);
  fact("Diagnoses", detail.diagnosis_codes.join(", "));
  fact("Medical necessity", detail.medical_necessity);
  fact("Patient response", detail.patient_response);
  fact("Signed", detail.signed_at ? localTime(detail.signed_at) : "not signed");
  fact("Sealed", detail.sealed ? "yes" : "no");
  const limit = detail.settings?.extra?.hard_limit_n;
  if (limit) chart.maxLbf = lbfValue(limit);
  const events = document.getElementById("events");
  events.replaceChildren();
  for (const e of detail.events) {
    const li = document.createElement("li");
    li.textContent = `${(e.t - (detail.settings?.t ?? 0)).toFixed(1)} s  ${e.kind}: ${e.reason}`;
    events.append(li);
  }
  chart.points = [];
  await samples(detail.settings?.t ?? 0);
}

if (root.dataset.canDocument === "True") {
  document.getElementById("document").hidden = false;
  document.getElementById("amend").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      await api("POST", `/sessions/${id}/amendments`, { field: form.field.value, value: form.value.value, why: form.why.value });
      toast("amended");
      load();
    } catch (error) {
      toast(describe(error));
    }
  });
  document.getElementById("sign").addEventListener("click", async () => {
    try {
      const me = await api("GET", "/me");
      if (!me.clinician_id) throw new Error("your user is not linked to a clinician, so it cannot sign");
      await api("POST", `/sessions/${id}/amendments`, { field: "signed_by_id", value: me.clinician_id, why: "signature" });
      toast("signed");
      load();
    } catch (error) {
      toast(describe(error));
    }
  });
}

load().catch((error) => toast(describe(error)));
