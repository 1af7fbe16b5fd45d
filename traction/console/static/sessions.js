import { apiPage, describe, localTime, toast } from "/console/static/common.js";

const rows = document.getElementById("rows");
const form = document.getElementById("filters");
const PAGE = 50;
let after = null; // the cursor of the next page, newest first

async function load(reset) {
  if (reset) {
    rows.replaceChildren();
    after = null;
  }
  const params = new URLSearchParams({ limit: String(PAGE), newest_first: "true" });
  if (after) params.set("after", after);
  if (form.patient.value.trim()) params.set("patient_reference", form.patient.value.trim());
  if (form.outcome.value) params.set("outcome", form.outcome.value);
  let items;
  try {
    ({ items, next: after } = await apiPage(`/sessions?${params}`));
  } catch (error) {
    toast(describe(error));
    return;
  }
  for (const s of items) {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = `/console/sessions/${s.id}`;
    link.textContent = s.id.slice(0, 12);
    const cells = [localTime(s.started_at), link, s.table_label, s.outcome ?? (s.running ? "running" : "unfinished"), String(s.sample_count), s.sealed ? "yes" : "no"];
    for (const value of cells) {
      const td = document.createElement("td");
      td.append(value);
      tr.append(td);
    }
    rows.append(tr);
  }
  document.getElementById("more").disabled = !after;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  load(true);
});
document.getElementById("more").addEventListener("click", () => load(false));
load(true);
