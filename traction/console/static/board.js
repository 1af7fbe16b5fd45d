import { api, describe, inWords, lbf, toast } from "/console/static/common.js";

const grid = document.getElementById("tables");
const template = document.getElementById("table-card");
const cards = new Map();

function card(name) {
  if (cards.has(name)) return cards.get(name);
  const node = template.content.firstElementChild.cloneNode(true);
  node.querySelector(".name").textContent = name;
  node.querySelector(".ack").addEventListener("submit", async (event) => {
    event.preventDefault();
    const why = node.querySelector(".ack-why").value.trim();
    try {
      const done = await api("POST", `/tables/${encodeURIComponent(name)}/ack`, { reason: why });
      toast(`${name}: acknowledged by ${done.acknowledged_by}`);
      refresh();
    } catch (error) {
      toast(describe(error));
    }
  });
  grid.append(node);
  cards.set(name, node);
  return node;
}

function alarmOf(table) {
  const lock = table.alarms?.[0];  // the oldest unacknowledged lock-severity trip
  if (lock) return `LOCKED: ${inWords(lock.fault_title, lock.reason)}. Check the patient and the table, then acknowledge.`;
  const state = table.state;
  if (table.unreachable) return `the table does not answer (${table.unreachable}). Check its power and cable.`;
  if (!state) return "no reading from the table";
  if (state.stop_switch_pressed) return "patient stop switch pressed";
  if (state.watchdog_tripped) return "the table's watchdog released it";
  if (state.fault_code) return `fault ${table.fault_name ?? state.fault_code}`;
  return null;
}

async function refresh() {
  let tables;
  try {
    tables = await api("GET", "/tables");
  } catch (error) {
    toast(describe(error));
    return;
  }
  for (const table of tables) {
    const node = card(table.name);
    const state = table.state;
    node.querySelector(".model").textContent = `${table.device.manufacturer ?? ""} ${table.device.model}`.trim();
    node.querySelector(".serial").textContent = table.device.serial_number;
    node.querySelector(".state").textContent = table.live
      ? `treating (${table.live.paused ? "paused" : "running"})`
      : table.unreachable ? "not answering" : state?.ready ? "ready" : "not ready";
    node.querySelector(".switch").textContent = state?.stop_switch_connected ? "connected" : "NOT connected";
    node.querySelector(".force").textContent = state ? lbf(state.measured_force_n) : "-";
    const alarm = alarmOf(table);
    const alarmBox = node.querySelector(".alarm");
    alarmBox.hidden = !alarm;
    alarmBox.textContent = alarm ?? "";
    node.querySelector(".ack").hidden = !table.locked;
    const link = node.querySelector(".live-link");
    link.hidden = !table.live;
    if (table.live) link.href = `/console/live/${table.live.session_id}`;
  }
}

refresh();
setInterval(refresh, 1000);
