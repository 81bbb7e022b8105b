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

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  return node;
}

// One value per bucket of the history, oldest first (null where the monitor took no sample).
function series(runs, history) {
  const n = history.buckets;
  const first = history.last_bucket - n + 1;
  const out = new Array(n).fill(null);
  for (const [a, b, value] of runs || []) {
    for (let bucket = Math.max(a, first); bucket <= b; bucket++) out[bucket - first] = value;
  }
  return out;
}

// The path lag of the last 15 minutes as an inline SVG: a stall is a ramp, a drained path a flat line.
function sparkline(runs, history, hotSeconds) {
  const width = 150, height = 32, pad = 2;
  const values = series(runs, history);
  const known = values.filter((v) => v !== null);
  const peak = Math.max(1, ...known);
  const last = known.length ? values[values.length - 1] : null;
  const step = (width - 2 * pad) / Math.max(1, values.length - 1);
  const y = (v) => height - pad - (v / peak) * (height - 2 * pad);
  const hot = last !== null && last >= hotSeconds;
  const root = svg("svg", {
    class: `sparkline${hot ? " hot" : ""}`, width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "data-peak": known.length ? Math.max(...known) : "", "data-last": last ?? "",
    "data-points": known.length,
  });
  const title = svg("title");
  title.textContent = known.length
    ? `path lag over the last ${Math.round((history.buckets * history.bucket_seconds) / 60)} min: now ${duration(last)}, peak ${duration(Math.max(...known))}`
    : "no sample yet";
  root.append(title);
  // The time axis: solid where the monitor sampled, dotted before (the hub started, or the page is new).
  const firstSeen = values.findIndex((v) => v !== null);
  const from = firstSeen < 0 ? width - pad : pad + firstSeen * step;
  root.append(svg("line", { class: "base unsampled", x1: pad, x2: from, y1: height - pad, y2: height - pad }));
  root.append(svg("line", { class: "base", x1: from, x2: width - pad, y1: height - pad, y2: height - pad }));
  // Gaps (no sample) split the line into segments.
  let segment = [];
  const segments = [];
  values.forEach((v, i) => {
    if (v === null) { if (segment.length) segments.push(segment); segment = []; return; }
    segment.push([pad + i * step, y(v)]);
  });
  if (segment.length) segments.push(segment);
  for (const points of segments) {
    const line = points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
    const [x0] = points[0], [x1] = points[points.length - 1];
    root.append(svg("polygon", { class: "area", points: `${x0.toFixed(1)},${height - pad} ${line} ${x1.toFixed(1)},${height - pad}` }));
    root.append(svg("polyline", { class: "line", points: points.length > 1 ? line : `${line} ${(x1 + 1).toFixed(1)},${points[0][1].toFixed(1)}` }));
  }
  if (last !== null) root.append(svg("circle", { class: "now", cx: width - pad, cy: y(last), r: 2 }));
  return root;
}

function sparkCell(row, history, hotSeconds) {
  if (!history) return el("td", { class: "spark", "data-field": "sparkline" }, "–");
  const peak = Math.max(0, ...(row.lag_history || []).map((r) => r[2]));
  const now = row.path_lag_seconds === null || row.path_lag_seconds === undefined ? "?" : duration(row.path_lag_seconds);
  const caption = peak > 0 ? `now ${now} · peak ${duration(peak)}` : `now ${now}`;
  return el("td", { class: "spark", "data-field": "sparkline" },
    sparkline(row.lag_history, history, hotSeconds), el("span", { class: "spark-caption" }, caption));
}

function bar(fraction, done) {
  const outer = el("div", { class: `bar${done ? " done" : ""}` }, el("span"));
  outer.firstChild.style.width = `${Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100)}%`;
  return outer;
}

function backfillCell(backfill) {
  if (!backfill) return el("td", { class: "backfill muted", "data-field": "backfill" }, "–");
  const done = backfill.state === "done";
  const total = backfill.records_total;
  const fraction = done ? 1 : total ? backfill.records_done / total : 0;
  const eta = done ? "done" : backfill.eta_seconds === null ? `${backfill.state}` : `${backfill.state} · ETA ${duration(backfill.eta_seconds)}`;
  return el("td", { class: "backfill", "data-field": "backfill", "data-state": backfill.state,
    "data-done": backfill.records_done, "data-total": total ?? "" },
    `${count(backfill.records_done)} / ${total === null ? "?" : count(total)}`,
    bar(fraction, done), el("span", { class: "sub" }, eta));
}

function sourceBacklogCell(backlog) {
  if (!backlog || backlog.rows === null || backlog.rows === undefined) {
    return el("td", { class: "num", "data-field": "source-backlog", title: "no fresh report from the owner's sidecar" }, "?");
  }
  return el("td", { class: "num", "data-field": "source-backlog", "data-rows": backlog.rows },
    `${count(backlog.rows)} · ${duration(backlog.oldest_seconds)}`);
}

function sinceText(ms) {
  if (!ms) return "never";
  return `${duration(Math.max(0, (Date.now() - ms) / 1000))} ago`;
}

function sourceRow(v) {
  const rows = v.rows === null ? "?" : `${count(v.rows)} · ${duration(v.oldest_seconds)}`;
  return el(
    "tr",
    { "data-source": `${v.department}/${v.source}`, "data-status": v.status, class: `status-${v.status}` },
    el("td", {}, pill(v.status)),
    el("td", { "data-field": "department" }, v.department),
    el("td", { "data-field": "source" }, v.source || "–", v.kind ? el("span", { class: "sub" }, `${v.kind} · ${v.state}`) : null),
    el("td", { "data-field": "resources" }, (v.resources || []).join(", ")),
    el("td", { class: "num", "data-field": "backlog", "data-rows": v.rows ?? "" }, rows),
    el("td", { class: "num", "data-field": "reported" }, sinceText(v.reported_ms)),
    el("td", { class: "reason", "data-field": "reason" }, v.reason),
  );
}

function renderPath(doc) {
  const path = doc.path || { drained: false, not_drained: [], restore: null, sources: [] };
  const drained = document.getElementById("tile-drained");
  drained.textContent = doc.refreshed_ms ? (path.drained ? "drained 已排空" : "not drained") : "–";
  drained.className = `value ${doc.refreshed_ms ? (path.drained ? "yes" : "no") : ""}`;
  document.getElementById("tile-not-drained").textContent = path.drained || !doc.refreshed_ms
    ? "source database → hub → subscriber database"
    : path.not_drained.join("; ");
  const r = path.restore;
  const value = document.getElementById("restore-value");
  const detail = document.getElementById("restore-detail");
  const restoreBar = document.getElementById("restore-bar");
  if (!r || r.partitions_total === 0) {
    value.textContent = "none";
    detail.textContent = "no restore since the hub started";
    restoreBar.hidden = true;
  } else {
    const fraction = r.records_total ? r.records_done / r.records_total : r.partitions_done / r.partitions_total;
    value.textContent = r.running ? `${Math.floor(fraction * 100)} %` : "restored";
    restoreBar.hidden = false;
    restoreBar.replaceWith(Object.assign(bar(fraction, !r.running), { id: "restore-bar" }));
    const eta = r.running && r.eta_seconds !== null ? ` · ETA ${duration(r.eta_seconds)}` : "";
    detail.textContent = `${r.partitions_done}/${r.partitions_total} partitions · ${count(r.records_done)} / ${count(r.records_total)} records${eta}`;
  }
  document.getElementById("tile-restore").dataset.running = r && r.running ? "true" : "false";
  const sources = [...(path.sources || [])].sort(
    (a, b) => (SEVERITY[b.status] ?? -1) - (SEVERITY[a.status] ?? -1) || `${a.department}/${a.source}`.localeCompare(`${b.department}/${b.source}`),
  );
  const empty = path.sources_error ? `backlog reports not read: ${path.sources_error}` : "no department owns a resource of this hub";
  replaceBody("sources", sources.map(sourceRow), empty, 7);
}

function reasonOf(row) {
  const parts = [];
  if (row.refusal) parts.push(`not delivered: ${row.refusal}`);
  for (const [label, lag] of [["hub", row.hub_lag], ["subscriber", row.subscriber_lag]]) {
    if (lag && lag.status && lag.status !== "OK") parts.push(`${label}: ${lag.reason}`);
  }
  return parts.join("; ");
}

function subscriptionRow(row, history, hotSeconds) {
  const status = row.status || "";
  return el(
    "tr",
    { "data-subscription": row.subscription, "data-status": status, class: `status-${status}` },
    // A refused subscription flows (nothing waits, so its lag status is OK) but delivers nothing: say so.
    el("td", {}, pill(row.status), row.refusal ? el("span", { class: "pill pill-refused", title: `not delivered: ${row.refusal}` }, "REFUSED") : null),
    el("td", { class: "who" }, el("span", { class: "name", "data-field": "subscription" }, row.subscription),
      el("span", { class: "sub", title: `${row.owner} → ${row.subscriber}` }, `${row.owner_name} → ${row.subscriber_name}`)),
    el("td", { "data-field": "resource", class: "nowrap" }, row.resource),
    sourceBacklogCell(row.source_backlog),
    backfillCell(row.backfill),
    lagCell(row.hub_lag, "hub-lag"),
    lagCell(row.subscriber_lag, "subscriber-lag"),
    sparkCell(row, history, hotSeconds),
    el("td", { class: "num", "data-field": "throughput" }, rate(row.delivered_per_second)),
    el("td", { class: "num" }, el("span", { "data-field": "delivered" }, count(row.delivered)),
      el("span", { class: "sub" }, "filtered ", el("span", { "data-field": "filtered" }, count(row.filtered)),
        " · refused ", el("span", { "data-field": "refused" }, count(row.refused)),
        " · dead ", el("span", { "data-field": "dead-lettered" }, count(row.dead_lettered)))),
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

  const hot = (doc.window_seconds || 60) / 4; // the default STALL threshold: a ramp above it turns red
  replaceBody("subscriptions", subs.map((row) => subscriptionRow(row, doc.history, hot)), "this hub serves no subscription", 11);
  renderPath(doc);
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
