import { api, describe, localTime, toast } from "/console/static/common.js";

const $ = (id) => document.getElementById(id);
const STATUS = { ready: "Ready", held: "Held", documented_only: "On another session's line" };
const KIND = { 1: "original", 7: "replacement", 8: "void" };
const PENDING = 200; // sessions shown waiting at most (GET /claims/pending checks each one)

function cell(row, value) {
  const td = document.createElement("td");
  td.append(value ?? "-");
  row.append(td);
  return td;
}

function sessionLink(id) {
  const a = document.createElement("a");
  a.href = `/console/sessions/${id}`;
  a.textContent = id.slice(0, 12);
  return a;
}

function findingsList(item) {
  if (item.status === "documented_only") return `billed on the line of session ${item.carried_by.slice(0, 12)}`;
  if (!item.findings.length) return "nothing";
  const list = document.createElement("ul");
  list.className = "findings";
  for (const f of item.findings) {
    const li = document.createElement("li");
    li.className = f.severity === "blocking" ? "block" : "";
    const who = document.createElement("strong");
    who.textContent = f.who;
    li.append(`${f.severity === "blocking" ? "Blocks" : "Note"}: ${f.code}: ${f.message} (fix: `, who, ")");
    list.append(li);
  }
  return list;
}

async function loadPending() {
  let items;
  try {
    items = await api("GET", `/claims/pending?limit=${PENDING}`);
  } catch (error) {
    $("pending-summary").textContent = describe(error);
    return;
  }
  const body = $("pending");
  body.replaceChildren();
  for (const item of items) {
    const tr = document.createElement("tr");
    tr.dataset.session = item.session_id;
    cell(tr, item.date_of_service);
    cell(tr, sessionLink(item.session_id));
    cell(tr, item.patient_ref);
    cell(tr, STATUS[item.status]).className = `status-${item.status}`;
    cell(tr, findingsList(item));
    body.append(tr);
  }
  const ready = items.filter((i) => i.status === "ready").length;
  const held = items.filter((i) => i.status === "held").length;
  const more = items.length >= PENDING ? ` (the oldest ${PENDING} only)` : "";
  $("pending-summary").textContent = items.length
    ? `${ready} ready, ${held} held, ${items.length - ready - held} on another session's line${more}.`
    : "Nothing is waiting: every finished session is billed.";
}

async function linesOf(ids) {
  // each line id is a cursor: pull from just before the first one, keep the run's own lines
  const wanted = new Set(ids);
  const found = [];
  let after = Math.min(...ids) - 1;
  while (found.length < wanted.size) {
    const page = await api("GET", `/claims?after=${after}&limit=1000`);
    if (!page.lines.length) break;
    found.push(...page.lines.filter((l) => wanted.has(l.id)));
    after = page.next_after;
  }
  return found;
}

function showLines(lines) {
  const body = $("pulled");
  body.replaceChildren();
  for (const l of lines) {
    const tr = document.createElement("tr");
    for (const value of [String(l.id), KIND[l.frequency], l.patient_ref, l.date_of_service, String(l.units), `$${l.charge}`]) cell(tr, value);
    cell(tr, l.session_ids.map((s) => s.slice(0, 12)).join(", "));
    body.append(tr);
  }
}

async function pull() {
  const button = $("pull");
  button.disabled = true;
  try {
    const run = await api("POST", "/claims/runs", { new: true });
    const lines = run.sent.length ? await linesOf(run.sent) : [];
    showLines(lines);
    const files = $("run-files");
    files.hidden = !lines.length;
    if (lines.length) {
      $("run-csv").href = `/claims/runs/${run.run_id}/csv`;
      $("run-x12").href = `/claims/runs/${run.run_id}/x12`;
    }
    $("pulled-summary").textContent = run.run_id === null
      ? "Nothing new to bill."
      : `Claim run ${run.run_id}: ${run.sent.length} new line(s) sent, ${run.held} held` +
        (run.already_sent.length ? `, ${run.already_sent.length} already sent before.` : ".");
  } catch (error) {
    toast(describe(error));
  } finally {
    button.disabled = false;
    loadPending();
  }
}

async function changeLine(action) {
  const form = $("line-change");
  const id = Number(form.line_id.value.trim());
  const why = form.why.value.trim();
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  if (!Number.isInteger(id) || id < 1) form.line_id.setAttribute("aria-invalid", "true");
  if (!why) form.why.setAttribute("aria-invalid", "true");
  if (form.querySelector("[aria-invalid]")) {
    $("line-result").textContent = "Give the claim line number and why.";
    return;
  }
  try {
    const line = await api("POST", `/claims/${id}/${action}`, { why });
    $("line-result").textContent = `Line ${line.id} sent: ${KIND[line.frequency]} (frequency ${line.frequency}) of line ${line.replaces_line_id}.`;
  } catch (error) {
    $("line-result").textContent = describe(error);
  }
}

async function loadDocuments() {
  let items;
  try {
    items = await api("GET", "/sessions?limit=100&newest_first=true&unfinished=false");
  } catch (error) {
    toast(describe(error));
    return;
  }
  for (const s of items.filter((s) => s.outcome)) {
    const tr = document.createElement("tr");
    for (const value of [localTime(s.started_at), s.id.slice(0, 12), s.outcome]) cell(tr, value);
    const links = cell(tr, "");
    for (const fmt of ["pdf", "json", "fhir"]) {
      const a = document.createElement("a");
      a.href = `/sessions/${s.id}/export/${fmt}`;
      a.textContent = `${fmt.toUpperCase()}`;
      a.setAttribute("aria-label", `${fmt.toUpperCase()} of session ${s.id.slice(0, 12)}`);
      a.className = "download";
      links.append(a, " ");
    }
    $("rows").append(tr);
  }
}

$("pull").addEventListener("click", pull);
$("correct").addEventListener("click", () => changeLine("correct"));
$("void").addEventListener("click", () => changeLine("void"));
loadPending();
loadDocuments();
