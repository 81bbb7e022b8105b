// The hub's status page: fetches /api/status every REFRESH_MS and re-renders. Text only through
// textContent (never innerHTML): names come from config files.
"use strict";

const REFRESH_MS = 1500; // at least; as slow as the lag refresh when the hub measures less often (max 10 s)
let nextRefreshMs = REFRESH_MS;
const SEVERITY = { STOP: 4, STALL: 3, REWIND: 2, WARN: 1, OK: 0 };
const STATUSES = ["OK", "WARN", "STALL", "STOP", "REWIND"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function count(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "?";
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.round((seconds % 86400) / 3600)} h`;
}

function rate(perSecond) {
  if (!perSecond) return "0";
  return perSecond < 10 ? perSecond.toFixed(2) : Math.round(perSecond).toLocaleString("en-US");
}

function pill(status) {
  const text = status || "…";
  return el("span", { class: `pill pill-${text}`, "data-field": "status" }, text);
}

function lagCell(lag, field) {
  if (!lag) return el("td", { class: "num", "data-field": field }, "…");
  if (lag.error) return el("td", { class: "num", "data-field": field, title: lag.error }, "n/a");
  const members = lag.members === null || lag.members === undefined ? "" : `${lag.members} consumer(s)`;
  return el(
    "td",
    { class: "num", "data-field": field, "data-records": lag.lag_records, "data-seconds": lag.lag_seconds, title: `${lag.group} · ${members}` },
    `${count(lag.lag_records)} · ${duration(lag.lag_seconds)}`,
  );
}

function reasonOf(row) {
  const parts = [];
  if (row.refusal) parts.push(`not delivered: ${row.refusal}`);
  for (const [label, lag] of [["hub", row.hub_lag], ["subscriber", row.subscriber_lag]]) {
    if (lag && lag.status && lag.status !== "OK") parts.push(`${label}: ${lag.reason}`);
  }
  return parts.join("; ");
}

function subscriptionRow(row) {
  const status = row.status || "";
  return el(
    "tr",
    { "data-subscription": row.subscription, "data-status": status, class: `status-${status}` },
    // A refused subscription flows (nothing waits, so its lag status is OK) but delivers nothing: say so.
    el("td", {}, pill(row.status), row.refusal ? el("span", { class: "pill pill-refused", title: `not delivered: ${row.refusal}` }, "REFUSED") : null),
    el("td", { "data-field": "subscription" }, row.subscription),
    el("td", {}, `${row.owner_name} → ${row.subscriber_name}`, el("span", { class: "sub" }, `${row.owner} → ${row.subscriber}`)),
    el("td", { "data-field": "resource" }, row.resource),
    lagCell(row.hub_lag, "hub-lag"),
    lagCell(row.subscriber_lag, "subscriber-lag"),
    el("td", { class: "num", "data-field": "throughput" }, rate(row.delivered_per_second)),
    el("td", { class: "num", "data-field": "delivered" }, count(row.delivered)),
    el("td", { class: "num", "data-field": "filtered" }, count(row.filtered)),
    el("td", { class: "num", "data-field": "refused" }, count(row.refused)),
    el("td", { class: "num", "data-field": "dead-lettered" }, count(row.dead_lettered)),
    el("td", { class: "reason", "data-field": "reason" }, reasonOf(row)),
  );
}

function deadLetterRow(item) {
  const reasons = Object.entries(item.by_reason || {})
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([reason, n]) => `${reason} ${count(n)}`)
    .join(", ");
  return el(
    "tr",
    { "data-department": item.department },
    el("td", {}, item.name, el("span", { class: "sub" }, item.department)),
    el("td", { class: "num", "data-field": "sent" }, count(item.sent)),
    el("td", { class: "reason" }, reasons),
    el("td", { class: "num", "data-field": "not-applied" }, count(item.not_applied)),
  );
}

function replaceBody(table, rows, empty, columns) {
  const body = document.querySelector(`#${table} tbody`);
  const fresh = el("tbody");
  if (rows.length === 0) fresh.append(el("tr", { class: "placeholder" }, el("td", { colspan: columns, class: "muted" }, empty)));
  for (const row of rows) fresh.append(row);
  body.replaceWith(fresh);
}

// Alerts the hub raised while it keeps serving: an applied config it refused, a subscription held back.
function renderAlerts(alerts) {
  const banner = document.getElementById("alerts");
  banner.hidden = alerts.length === 0;
  banner.querySelector("ul").replaceChildren(
    ...alerts.map((a) =>
      el("li", { "data-alert": a.kind, "data-subject": a.subject },
        `${a.message} (since ${new Date(a.since_ms).toLocaleTimeString()})`),
    ),
  );
}

// Share requests pending past their answer day (xhub requests --overdue), shown only when there are some.
function renderShareRequests(requests) {
  const section = document.getElementById("share-requests");
  const overdue = (requests && requests.requests) || [];
  section.hidden = overdue.length === 0;
  if (overdue.length === 0) return;
  document.getElementById("share-requests-rule").textContent =
    `answer due within ${requests.answer_within_working_days} working days · judged ${requests.today}`;
  replaceBody("overdue-requests", overdue.map((r) => el(
    "tr",
    { "data-request": r.subscription, "data-owner": r.owner },
    el("td", {}, r.owner_name, el("span", { class: "sub" }, r.owner)),
    el("td", { "data-field": "subscription" }, r.subscription),
    el("td", {}, r.subscriber_name, el("span", { class: "sub" }, r.subscriber)),
    el("td", { "data-field": "resource" }, r.resource),
    el("td", { "data-field": "requested" }, r.requested_on || "?"),
    el("td", { "data-field": "due" }, r.due_on || "?"),
    el("td", { class: "num", "data-field": "late" }, r.working_days_late ?? "?"),
  )), "", 7);
}

function render(doc) {
  document.getElementById("hub-name").textContent = doc.hub;
  document.getElementById("hub-description").textContent = doc.description || "";
  document.title = `${doc.hub} · exchange-hub status`;
  const ready = document.getElementById("ready");
  ready.textContent = doc.ready ? "ready" : "not ready";
  ready.className = `pill ${doc.ready ? "pill-ready" : "pill-not-ready"}`;
  const updated = document.getElementById("updated");
  updated.dataset.refreshedMs = doc.refreshed_ms ?? "";
  const every = doc.refresh_interval_seconds ? ` · every ${duration(doc.refresh_interval_seconds)}` : "";
  updated.textContent = doc.refreshed_ms
    ? `lag measured ${new Date(doc.refreshed_ms).toLocaleTimeString()}${every}`
    : "measuring lag…";
  const note = document.getElementById("refresh-note");
  note.hidden = !doc.refresh_note;
  note.textContent = doc.refresh_note || "";
  document.getElementById("window").textContent = `status window ${doc.window_seconds} s`;

  const error = document.getElementById("error");
  error.hidden = !doc.error;
  error.textContent = doc.error ? `last lag refresh failed: ${doc.error}` : "";

  renderAlerts(doc.alerts || []);
  renderShareRequests(doc.share_requests);

  const subs = [...doc.subscriptions].sort(
    (a, b) => (SEVERITY[b.status] ?? -1) - (SEVERITY[a.status] ?? -1) || a.subscription.localeCompare(b.subscription),
  );
  document.getElementById("tile-subscriptions").textContent = count(subs.length);
  const counts = document.getElementById("tile-status");
  counts.replaceChildren(
    ...STATUSES.map((s) => {
      const n = doc.status_counts[s] || 0;
      return el("span", { class: `pill pill-${s}${n ? "" : " pill-zero"}`, "data-status-count": s }, `${s} ${n}`);
    }),
  );
  document.getElementById("tile-rate").textContent = rate(doc.totals.delivered_per_second);
  document.getElementById("tile-delivered").textContent = `${count(doc.totals.delivered)} delivered, ${count(doc.totals.consumed)} consumed`;
  const f = doc.freshness;
  document.getElementById("tile-freshness").textContent =
    f.samples ? `${duration(f.p50_seconds)} / ${duration(f.p99_seconds)}` : "–";
  const dead = doc.dead_letters.reduce((sum, d) => sum + d.sent, 0);
  document.getElementById("tile-dead").textContent = count(dead);

  replaceBody("subscriptions", subs.map(subscriptionRow), "this hub serves no subscription", 12);
  const depts = [...doc.dead_letters].sort((a, b) => b.sent - a.sent || a.department.localeCompare(b.department));
  replaceBody("dead-letters", depts.map(deadLetterRow), "no department configured", 4);
}

async function refresh() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const doc = await response.json();
    render(doc);
    nextRefreshMs = Math.max(REFRESH_MS, Math.min((doc.refresh_interval_seconds || 0) * 1000, 10000));
  } catch (err) {
    const error = document.getElementById("error");
    error.hidden = false;
    error.textContent = `the hub did not answer (${err.message}); retrying`;
  } finally {
    setTimeout(refresh, nextRefreshMs);
  }
}

refresh();
