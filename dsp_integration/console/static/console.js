// Live updates for the console's pages: poll the JSON API, rebuild rows with
// createElement/textContent only (never innerHTML), so data always stays text.
"use strict";

const POLL_MS = 1500;
const STATUS_ORDER = ["waiting", "submitting", "polling", "succeeded", "rejected", "failed",
  "cancelled", "blocked"];

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function link(href, text) { return el("a", text, { href: href }); }

function statusChip(status) {
  return el("span", status || "unknown", { class: "status s-" + (status || "unknown") });
}

function when(iso) { return iso ? iso.slice(0, 19).replace("T", " ") : ""; }

function fillCounts(node, counts) {
  node.replaceChildren();
  for (const status of STATUS_ORDER) {
    if (!counts[status]) continue;
    node.append(el("span", status + " " + counts[status], { class: "status s-" + status }), " ");
  }
}

async function getJson(url) {
  const answer = await fetch(url, { headers: { Accept: "application/json" } });
  if (answer.status === 401) { window.location.reload(); throw new Error("logged out"); }
  if (!answer.ok) throw new Error(url + ": " + answer.status);
  return answer.json();
}

function every(ms, step) {
  let stopped = false;
  const run = async () => {
    try { stopped = (await step()) === false; } catch (error) { console.warn(error); }
    if (!stopped) window.setTimeout(run, ms);
  };
  window.setTimeout(run, ms);
}

async function updateBudget() {
  const budget = await getJson("/api/budget");
  document.getElementById("budget-rows").replaceChildren(...budget.seats.map((s) => {
    const row = el("tr", null, { "data-seat": s.seat });
    const name = el("td", s.seat);
    if (s.seat === budget.default_seat) name.append(" ", el("span", "default", { class: "muted" }));
    const used = el("td");
    used.append(el("meter", null, { min: 0, max: s.limit, value: s.used }));
    row.append(name, used,
      el("td", s.used + " / " + s.limit + " in the last " + s.window_seconds + " s"),
      el("td", s.calls_waiting),
      el("td", s.throttled_total),
      el("td", s.paused_seconds > 0 ? s.paused_seconds.toFixed(1) + " s" : ""));
    return row;
  }));
}

async function updateBatches() {
  const batches = await getJson("/api/batches");
  const body = document.getElementById("batch-rows");
  if (!batches.length) return;
  body.replaceChildren(...batches.map((b) => {
    const row = el("tr", null, { "data-batch": b.name });
    const name = el("td");
    name.append(link("/batches/" + encodeURIComponent(b.name), b.name));
    const progress = el("td");
    progress.append(el("progress", null, { max: b.total, value: b.ended }), " " + b.ended + "/" + b.total);
    const counts = el("td", null, { class: "counts" });
    fillCounts(counts, b.counts);
    row.append(name, progress, counts, el("td", when(b.created)), el("td", when(b.finished)));
    return row;
  }));
}

function livenIndex() {
  every(POLL_MS, async () => { await Promise.all([updateBudget(), updateBatches()]); });
}

function livenBatch(body) {
  const name = body.dataset.batch;
  const query = new URLSearchParams({ batch: name, limit: "1000" });
  if (body.dataset.status) query.set("status", body.dataset.status);
  if (body.dataset.type) query.set("type", body.dataset.type);
  let finished = Boolean(body.dataset.finished);
  if (finished) return;
  every(POLL_MS, async () => {
    const [batch, page] = await Promise.all([
      getJson("/api/batches/" + encodeURIComponent(name)),
      getJson("/api/entities?" + query.toString()),
    ]);
    const progress = document.getElementById("batch-progress");
    progress.max = batch.total;
    progress.value = batch.ended;
    document.getElementById("batch-ended").textContent = batch.ended + "/" + batch.total + " ended";
    document.getElementById("batch-state").textContent =
      batch.finished ? "finished " + when(batch.finished) : "running";
    fillCounts(document.getElementById("batch-counts"), batch.counts);
    document.getElementById("batch-seats").textContent =
      (batch.seats.length > 1 ? "seats " : "seat ") + batch.seats.join(", ");
    document.getElementById("entity-rows").replaceChildren(...page.items.map((e) => {
      const row = el("tr", null, { "data-key": e.key });
      const key = el("td");
      key.append(link("/entities/" + encodeURIComponent(e.key), e.key));
      const status = el("td");
      status.append(statusChip(e.status));
      row.append(key, el("td", e.type), el("td", e.seat), status, el("td", e.dsp_id || ""),
        el("td", e.dsp_status || ""), el("td", e.reason || ""));
      return row;
    }));
    finished = Boolean(batch.finished);
    if (finished) body.dataset.finished = "yes";
    return !finished;
  });
}

const ENDED = new Set(["succeeded", "rejected", "failed", "cancelled", "blocked"]);

function livenEntity(body) {
  const key = body.dataset.key;
  every(POLL_MS, async () => {
    const entity = await getJson("/api/entities/" + encodeURIComponent(key));
    const status = document.getElementById("entity-status");
    status.textContent = entity.status;
    status.className = "status s-" + entity.status;
    document.getElementById("entity-dsp-id").textContent = entity.dsp_id || "";
    document.getElementById("entity-dsp-status").textContent = entity.dsp_status || "";
    document.getElementById("entity-reason").textContent = entity.reason || "";
    document.getElementById("entity-version").textContent = entity.payload_version;
    const cancel = document.getElementById("cancel-button");
    if (cancel) cancel.disabled = ENDED.has(entity.status);
    return true;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const body = document.body;
  if (body.dataset.live === "index") livenIndex();
  if (body.dataset.live === "batch") livenBatch(body);
  if (body.dataset.live === "entity") livenEntity(body);
});
