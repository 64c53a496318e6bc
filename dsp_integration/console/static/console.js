// Live updates for the console's pages: poll the JSON API, rebuild rows with
// createElement/textContent only (never innerHTML), so data always stays text.
"use strict";

const POLL_MS = 1500;
const CHARTS_MS = 30000;
const STATUS_ORDER = ["waiting", "submitting", "polling", "succeeded", "rejected", "failed",
  "cancelled", "blocked"];

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function link(href, text) { return el("a", text, { href: href }); }

// Live regions announce every change: text is only set when it differs.
function say(node, text) { if (node && node.textContent !== text) node.textContent = text; }

function statusChip(status) {
  return el("span", status || "unknown", { class: "status s-" + (status || "unknown") });
}

function when(iso) { return iso ? iso.slice(0, 19).replace("T", " ") : ""; }

// Times: the server writes <time datetime="ISO">... UTC</time>; shown here in the viewer's
// time zone, the absolute UTC time kept as the tooltip.
function utcText(date, millis) {
  const iso = date.toISOString();
  return iso.slice(0, millis ? 23 : 19).replace("T", " ") + " UTC";
}

function localText(date, millis) {
  const options = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short" };
  if (millis) options.fractionalSecondDigits = 3;
  return new Intl.DateTimeFormat(undefined, options).format(date);
}

function localize(node) {
  const date = new Date(node.getAttribute("datetime"));
  if (Number.isNaN(date.getTime())) return;
  const millis = node.hasAttribute("data-millis");
  node.title = utcText(date, millis);
  node.textContent = localText(date, millis);
}

function localizeAll(root) {
  for (const node of root.querySelectorAll("time[datetime]")) localize(node);
}

function timeEl(iso) {
  if (!iso) return document.createTextNode("");
  const node = el("time", when(iso) + " UTC", { datetime: iso });
  localize(node);
  return node;
}

function cell(child) {
  const td = el("td");
  td.append(child);
  return td;
}

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
  const waiting = budget.seats.reduce((sum, s) => sum + s.calls_waiting, 0);
  const summary = document.getElementById("budget-summary");
  const said = waiting + " DSP calls waiting across " + budget.seats.length + " seats";
  if (summary && summary.textContent !== said) summary.textContent = said;
  document.getElementById("budget-rows").replaceChildren(...budget.seats.map((s) => {
    const row = el("tr", null, { "data-seat": s.seat });
    const name = el("td", s.seat);
    if (s.seat === budget.default_seat) name.append(" ", el("span", "default", { class: "muted" }));
    const used = el("td");
    used.append(el("meter", null, { min: 0, max: s.limit, value: s.used,
      "aria-label": "budget used by seat " + s.seat }));
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
    progress.append(el("progress", null, { max: b.total, value: b.ended,
      "aria-label": b.name + ": " + b.ended + " of " + b.total + " ended" }),
    " " + b.ended + "/" + b.total);
    const counts = el("td", null, { class: "counts" });
    fillCounts(counts, b.counts);
    row.append(name, progress, counts, cell(timeEl(b.created)), cell(timeEl(b.finished)));
    return row;
  }));
}

// The plots are drawn by the server (inline SVG); refreshed by asking it for them again.
async function updateCharts() {
  const answer = await fetch("/activity/charts", { headers: { Accept: "text/html" } });
  if (!answer.ok) return;
  const parsed = new DOMParser().parseFromString(await answer.text(), "text/html");
  const fresh = parsed.getElementById("charts");
  const current = document.getElementById("charts");
  if (fresh && current) current.replaceWith(document.importNode(fresh, true));
}

function livenIndex() {
  every(POLL_MS, async () => { await Promise.all([updateBudget(), updateBatches()]); });
  every(CHARTS_MS, updateCharts);
}

function livenBatch(body) {
  const name = body.dataset.batch;
  const query = new URLSearchParams({ batch: name, limit: "1000" });
  if (body.dataset.status) query.set("status", body.dataset.status);
  if (body.dataset.type) query.set("type", body.dataset.type);
  if (body.dataset.seat) query.set("seat", body.dataset.seat);
  // The key-or-name filter, as the server applies it (any case, anywhere in either).
  const text = (body.dataset.q || "").toLowerCase();
  const matches = (e) => !text || e.key.toLowerCase().includes(text)
    || (e.name || "").toLowerCase().includes(text);
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
    say(document.getElementById("batch-ended"), batch.ended + "/" + batch.total + " ended");
    const state = document.getElementById("batch-state");
    if (batch.finished) state.replaceChildren("finished ", timeEl(batch.finished));
    else say(state, "running");
    fillCounts(document.getElementById("batch-counts"), batch.counts);
    document.getElementById("batch-seats").textContent =
      (batch.seats.length > 1 ? "seats " : "seat ") + batch.seats.join(", ");
    document.getElementById("entity-rows").replaceChildren(...page.items.filter(matches).map((e) => {
      const row = el("tr", null, { "data-key": e.key });
      const key = el("td");
      key.append(link("/entities/" + encodeURIComponent(e.key), e.key));
      const status = el("td");
      status.append(statusChip(e.status));
      row.append(key, el("td", e.name || "", { class: "name" }), el("td", e.type), el("td", e.seat),
        status, el("td", e.dsp_id || ""),
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
    say(status, entity.status);
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
  localizeAll(document);
  if (body.dataset.live === "index") livenIndex();
  if (body.dataset.live === "batch") livenBatch(body);
  if (body.dataset.live === "entity") livenEntity(body);
});
