"""The 考核 (sharing assessment) report as one self-contained HTML page: ``xhub report --html OUT.html``.

Everything is in the file: CSS inline, charts drawn as inline SVG, no script, no font or image fetched,
so it can be mailed, archived and opened offline. Chinese labels need a CJK font on the reader's machine:
the page names a stack of common ones (Noto Sans CJK from Debian's fonts-noto-cjk, PingFang, YaHei).
Every figure a test or a reader may check carries ``data-dept`` / ``data-field`` attributes.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from typing import Any

from hub.monitor.report import DepartmentReport, SharingReport
from hub.monitor.snapshot import percentile

FONTS = (
    '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", '
    '"WenQuanYi Micro Hei", system-ui, sans-serif'
)
# Freshness buckets (seconds from source commit to delivery), upper bounds; the last is open.
FRESHNESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)
PALETTE = ("#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d")

_CSS = f"""
body {{ margin: 0; padding: 24px 32px; background: #f6f7f9; color: #1d2330;
  font: 14px/1.5 {FONTS}; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} h2 {{ font-size: 17px; margin: 28px 0 8px; }}
.muted {{ color: #6b7280; }} .small {{ font-size: 12px; }}
table {{ border-collapse: collapse; background: #fff; width: 100%; }}
th, td {{ border-bottom: 1px solid #e3e6eb; padding: 5px 8px; text-align: left; vertical-align: top; }}
th {{ background: #eef1f5; font-weight: 600; font-size: 12px; }}
td.num, th.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
.tiles {{ display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }}
.tile {{ background: #fff; border: 1px solid #e3e6eb; border-radius: 6px; padding: 10px 14px;
  min-width: 150px; }}
.tile .value {{ font-size: 22px; font-weight: 600; }}
.charts {{ display: flex; gap: 16px; flex-wrap: wrap; }}
.chart {{ background: #fff; border: 1px solid #e3e6eb; border-radius: 6px; padding: 8px; }}
.chart h3 {{ font-size: 13px; margin: 2px 6px 6px; }}
svg text {{ font-family: {FONTS}; font-size: 11px; fill: #1d2330; }}
.rank1 td {{ background: #f0fdf4; }} .late {{ color: #b91c1c; font-weight: 600; }}
td.dept {{ white-space: nowrap; }} h3.caption {{ font-size: 13px; margin: 14px 0 6px; }}
th .muted {{ font-weight: 400; }} #ranking {{ width: auto; min-width: 60%; }}
"""


def render_html(report: SharingReport, *, source: str = "") -> str:
    """The report as a complete HTML document (UTF-8 text)."""
    depts = report.departments
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.generated_ms / 1000))
    parts = [
        "<!doctype html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>共享考核报告 · sharing assessment</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>政务数据共享考核报告 <span class='muted'>sharing assessment per department</span></h1>",
        f"<div class='muted small'>config {_e(source)} · hubs {_e(', '.join(report.hubs))} · generated "
        f"{_e(stamp)} · requests judged on {_e(report.today)} (answer due within "
        f"{report.answer_within_working_days} working days, official calendar) · audit entries read "
        f"<span data-field='audit-entries'>{report.audit_entries}</span></div>",
        *(f"<p class='late'>⚠ {_e(w)}</p>" for w in report.warnings),
        _tiles(depts),
        "<h2>排名 Ranking</h2>",
        _ranking(depts),
        "<h2>各部门 Per department</h2>",
        _department_table(depts),
        "<h2>图表 Charts</h2><div class='charts'>",
        _chart(
            "各部门交付记录 Records delivered per department", _bars(depts, "delivered"), "chart-delivered"
        ),
        _chart("各部门共享率 Share ratio per department", _bars(depts, "share"), "chart-share"),
        _chart(
            "时效分布 Freshness (s, source commit → delivery)", _freshness_chart(depts), "chart-freshness"
        ),
        _chart("共享申请 Requests over time (filed / answered)", _timeline(report), "chart-requests"),
        "</div>",
        "<h2>拒绝共享 Refusals (reason, legal basis)</h2>",
        _refusals(depts),
        "<h2>数据质量 Dead letters by reason (谁产生谁负责)</h2>",
        _dead_letters(depts),
        _notes(),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio * 100:.0f}%"


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def _name(d: DepartmentReport) -> str:
    """The department's name without a parenthesised English gloss."""
    return d.name.split(" (", 1)[0].strip() or d.department


def _tiles(depts: Sequence[DepartmentReport]) -> str:
    catalogued = sum(d.resources_total for d in depts)
    shared = sum(d.resources_total - d.resources["not_shared"] for d in depts)
    received = sum(d.requests.received for d in depts)
    on_time = sum(d.requests.on_time for d in depts)
    overdue = sum(d.requests.overdue for d in depts)
    delivered = sum(d.records_delivered for d in depts)
    dead = sum(d.bad_records_sent for d in depts)
    tiles = [
        ("数据资源 Catalogued", f"{catalogued:,}", "total-catalogued", f"{shared:,} shared"),
        (
            "共享率 Share ratio",
            _pct(shared / catalogued if catalogued else None),
            "total-share",
            "shared/catalogued",
        ),
        (
            "共享申请 Requests",
            f"{received:,}",
            "total-requests",
            f"{on_time:,} on time · {overdue:,} overdue",
        ),
        ("交付记录 Delivered", f"{delivered:,}", "total-delivered", "from the audit"),
        ("死信 Dead letters", f"{dead:,}", "total-dead", "bad records sent"),
    ]
    cells = "".join(
        f"<div class='tile'><div class='muted small'>{_e(label)}</div>"
        f"<div class='value' data-field='{field}'>{_e(value)}</div>"
        f"<div class='muted small'>{_e(note)}</div></div>"
        for label, value, field, note in tiles
    )
    return f"<section class='tiles'>{cells}</section>"


def _ranking(depts: Sequence[DepartmentReport]) -> str:
    ranked = sorted(depts, key=lambda d: (d.rank is None, d.rank or 0, d.department))
    rows = []
    for d in ranked:
        css = " class='rank1'" if d.rank == 1 else ""
        rows.append(
            f"<tr data-dept='{_e(d.department)}'{css}><td class='num' data-field='rank'>{d.rank or '–'}</td>"
            f"<td>{_e(_name(d))} <span class='muted small'>{_e(d.department)}</span></td>"
            f"<td class='num' data-field='score'>{'–' if d.score is None else f'{d.score * 100:.1f}'}</td>"
            f"<td class='num'>{_pct(d.shareable_ratio)}</td>"
            f"<td class='num'>{_pct(d.requests.on_time_ratio)}</td>"
            f"<td class='num'>{_pct(d.clean_ratio)}</td></tr>"
        )
    return (
        "<table id='ranking'><thead><tr><th class='num'>#</th><th>Department 部门</th>"
        "<th class='num'>Score 得分</th><th class='num'>Share ratio</th><th class='num'>Answered on time</th>"
        "<th class='num'>Records without dead letter</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


# (data-field, header: Chinese, English) of the two per-department tables
_CATALOGUE_COLUMNS = (
    ("catalogued", "编目", "catalogued"),
    ("unconditional", "无条件", "unconditional"),
    ("conditional", "有条件", "conditional"),
    ("not-shared", "不予共享", "not shared"),
    ("share-ratio", "共享率", "share ratio"),
    ("requests-received", "收到申请", "requests"),
    ("answered-on-time", "按时答复", "on time"),
    ("answered-late", "逾期答复", "late"),
    ("refused", "拒绝", "refused"),
    ("pending", "待答复", "pending"),
    ("overdue", "已逾期", "overdue"),
    ("median-answer-days", "答复中位数", "median working days"),
)
_DELIVERY_COLUMNS = (
    ("subscriptions-served", "服务订阅", "subscriptions served"),
    ("records-delivered", "交付记录", "records delivered"),
    ("freshness-p50", "时效 p50", "seconds"),
    ("freshness-p99", "时效 p99", "seconds"),
    ("dead-letters", "死信", "dead letters sent"),
)


def _catalogue_cells(d: DepartmentReport) -> list[str]:
    r = d.requests
    return [
        str(d.resources_total),
        str(d.resources["unconditional"]),
        str(d.resources["conditional"]),
        str(d.resources["not_shared"]),
        _pct(d.shareable_ratio),
        str(r.received),
        str(r.on_time),
        str(r.late),
        str(r.refused),
        str(r.pending),
        str(r.overdue),
        _days(r.median_answer_days),
    ]


def _delivery_cells(d: DepartmentReport) -> list[str]:
    fresh = d.to_json()["freshness"]
    return [
        str(d.subscriptions_served),
        f"{d.records_delivered:,}",
        _secs(fresh["p50_seconds"]),
        _secs(fresh["p99_seconds"]),
        f"{d.bad_records_sent:,}",
    ]


def _department_table(depts: Sequence[DepartmentReport]) -> str:
    return _table(
        "departments-catalogue",
        "编目与共享申请 Catalogue and share requests",
        depts,
        _CATALOGUE_COLUMNS,
        _catalogue_cells,
    ) + _table(
        "departments-delivery",
        "交付与数据质量 Deliveries and data quality",
        depts,
        _DELIVERY_COLUMNS,
        _delivery_cells,
    )


def _table(
    ident: str,
    caption: str,
    depts: Sequence[DepartmentReport],
    columns: Sequence[tuple[str, str, str]],
    cells_of: Any,
) -> str:
    head = "".join(
        f"<th class='num'>{_e(zh)}<br><span class='muted'>{_e(en)}</span></th>" for _, zh, en in columns
    )
    rows = []
    for d in depts:
        cells = "".join(
            f"<td class='num{' late' if field == 'overdue' and value != '0' else ''}' data-field='{field}'>"
            f"{_e(value)}</td>"
            for (field, _, _), value in zip(columns, cells_of(d), strict=True)
        )
        rows.append(
            f"<tr data-dept='{_e(d.department)}'><td class='dept'>{_e(_name(d))} "
            f"<span class='muted small'>{_e(d.department)}</span></td>{cells}</tr>"
        )
    return (
        f"<h3 class='caption'>{_e(caption)}</h3><table id='{ident}' class='departments'><thead><tr>"
        f"<th>部门 Department</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _chart(title: str, svg: str, ident: str) -> str:
    return f"<div class='chart' id='{ident}'><h3>{_e(title)}</h3>{svg}</div>"


def _bars(depts: Sequence[DepartmentReport], what: str) -> str:
    """Horizontal bars, one per department: records delivered, or share ratio (0-100 %)."""
    items: list[tuple[str, str, float, str]] = []
    for d in depts:
        if what == "delivered":
            items.append((d.department, _name(d), float(d.records_delivered), f"{d.records_delivered:,}"))
        elif d.shareable_ratio is not None:
            items.append((d.department, _name(d), d.shareable_ratio * 100, _pct(d.shareable_ratio)))
    if not items:
        return "<p class='muted small'>nothing to draw</p>"
    label_w, bar_w, row_h = 170, 260, 22
    top = max(v for _, _, v, _ in items) or 1.0
    if what == "share":
        top = 100.0
    height = row_h * len(items) + 8
    shapes = []
    for i, (dept, name, v, text) in enumerate(items):
        y = 4 + i * row_h
        w = bar_w * v / top
        shapes.append(
            f"<text x='{label_w - 6}' y='{y + 14}' text-anchor='end'>{_e(name)}</text>"
            f"<rect data-dept='{_e(dept)}' data-value='{v:g}' x='{label_w}' y='{y + 3}' width='{w:.1f}' "
            f"height='{row_h - 6}' fill='{PALETTE[0] if what == 'delivered' else PALETTE[1]}'/>"
            f"<text x='{label_w + w + 4:.1f}' y='{y + 14}'>{_e(text)}</text>"
        )
    width = label_w + bar_w + 70
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img'>{''.join(shapes)}</svg>"
    )


def freshness_histogram(samples: Sequence[float]) -> list[int]:
    """Counts of ``samples`` per :data:`FRESHNESS_BUCKETS` (≤ bound), the last for anything above."""
    counts = [0] * (len(FRESHNESS_BUCKETS) + 1)
    for s in samples:
        i = next((k for k, bound in enumerate(FRESHNESS_BUCKETS) if s <= bound), len(FRESHNESS_BUCKETS))
        counts[i] += 1
    return counts


def _freshness_chart(depts: Sequence[DepartmentReport]) -> str:
    """Stacked columns per freshness bucket, one colour per providing department."""
    series = [(d, freshness_histogram(d.freshness_seconds)) for d in depts if d.freshness_seconds]
    if not series:
        return "<p class='muted small'>no delivered record sampled</p>"
    labels = [f"≤{b:g}" for b in FRESHNESS_BUCKETS] + [f">{FRESHNESS_BUCKETS[-1]:g}"]
    totals = [sum(h[i] for _, h in series) for i in range(len(labels))]
    top = max(totals) or 1
    col_w, plot_h, left, base = 40, 150, 36, 186  # room above the tallest column for its count
    shapes = [
        f"<line x1='{left}' y1='{base}' x2='{left + col_w * len(labels)}' y2='{base}' stroke='#9ca3af'/>"
    ]
    for i, label in enumerate(labels):
        x = left + i * col_w
        y = float(base)
        for k, (d, hist) in enumerate(series):
            h = plot_h * hist[i] / top
            if hist[i]:
                y -= h
                shapes.append(
                    f"<rect data-dept='{_e(d.department)}' data-bucket='{_e(label)}' data-count='{hist[i]}' "
                    f"x='{x + 4}' y='{y:.1f}' width='{col_w - 8}' height='{h:.1f}' "
                    f"fill='{PALETTE[k % len(PALETTE)]}'/>"
                )
        shapes.append(f"<text x='{x + col_w / 2}' y='{base + 14}' text-anchor='middle'>{_e(label)}</text>")
        if totals[i]:
            shapes.append(
                f"<text x='{x + col_w / 2}' y='{y - 3:.1f}' text-anchor='middle'>{totals[i]}</text>"
            )
    legend_y = base + 32  # one line per department: Chinese names are too long to share a line
    for k, (d, _) in enumerate(series):
        y = legend_y + k * 16
        shapes.append(
            f"<rect x='{left}' y='{y - 9}' width='10' height='10' fill='{PALETTE[k % len(PALETTE)]}'/>"
            f"<text x='{left + 14}' y='{y}'>{_e(_name(d))}</text>"
        )
    p50 = percentile([s for d, _ in series for s in d.freshness_seconds], 0.5)
    shapes.append(f"<text x='{left}' y='12' class='muted'>all: p50 {_secs(p50)} s</text>")
    width = left + col_w * len(labels) + 10
    height = legend_y + 16 * len(series)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img'>{''.join(shapes)}</svg>"
    )


def _timeline(report: SharingReport) -> str:
    """Per month: requests filed and answers given, as paired columns."""
    months = report.requests_by_month
    if not months:
        return "<p class='muted small'>no dated share request</p>"
    top = max(max(m["filed"], m["answered"]) for m in months) or 1
    col_w, plot_h, left, base = 44, 120, 24, 140
    shapes = [
        f"<line x1='{left}' y1='{base}' x2='{left + col_w * len(months)}' y2='{base}' stroke='#9ca3af'/>"
    ]
    for i, m in enumerate(months):
        x = left + i * col_w
        for k, key in enumerate(("filed", "answered")):
            h = plot_h * m[key] / top
            shapes.append(
                f"<rect data-month='{m['month']}' data-series='{key}' data-count='{m[key]}' "
                f"x='{x + 4 + k * 18}' "
                f"y='{base - h:.1f}' width='16' height='{h:.1f}' fill='{PALETTE[2 if k == 0 else 0]}'/>"
            )
        shapes.append(
            f"<text x='{x + col_w / 2}' y='{base + 14}' text-anchor='middle'>{m['month'][2:]}</text>"
        )
    legend = (
        f"<rect x='{left}' y='{base + 24}' width='10' height='10' fill='{PALETTE[2]}'/>"
        f"<text x='{left + 14}' y='{base + 33}'>filed 提出</text>"
        f"<rect x='{left + 90}' y='{base + 24}' width='10' height='10' fill='{PALETTE[0]}'/>"
        f"<text x='{left + 104}' y='{base + 33}'>answered 答复</text>"
    )
    width = max(left + col_w * len(months) + 10, 240)
    height = base + 42
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img'>{''.join(shapes)}{legend}</svg>"
    )


def _refusals(depts: Sequence[DepartmentReport]) -> str:
    rows = [
        f"<tr data-refusal='{_e(r.subscription)}' data-dept='{_e(d.department)}'><td>{_e(_name(d))}</td>"
        f"<td>{_e(r.subscription)}</td><td>{_e(r.subscriber)}</td><td>{_e(r.resource)}</td>"
        f"<td data-field='reason'>{_e(r.reason)}</td><td data-field='legal-basis'>{_e(r.legal_basis)}</td>"
        f"<td>{_e(r.reference or '')}</td></tr>"
        for d in depts
        for r in d.requests.refusals
    ]
    if not rows:
        return "<p class='muted'>no request refused</p>"
    return (
        "<table id='refusals'><thead><tr><th>Owner</th><th>Subscription</th><th>Subscriber</th>"
        "<th>Resource</th>"
        "<th>Reason 理由</th><th>Legal basis 依据</th><th>Reference 文号</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _dead_letters(depts: Sequence[DepartmentReport]) -> str:
    rows = [
        f"<tr data-dept='{_e(d.department)}' data-reason='{_e(reason)}'><td>{_e(_name(d))}</td>"
        f"<td>{_e(reason)}</td><td class='num' data-field='count'>{n:,}</td></tr>"
        for d in depts
        for reason, n in sorted(d.bad_records_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if not rows:
        return "<p class='muted'>no dead letter</p>"
    return (
        "<table id='dead-letters'><thead><tr><th>Department (sent them)</th><th>Reason</th>"
        "<th class='num'>Records</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _notes() -> str:
    notes: list[tuple[str, Any]] = [
        ("Share ratio 共享率", "resources shared (unconditional + conditional) / resources catalogued"),
        (
            "Requests 共享申请",
            "subscriptions to its conditional resources; on time = answered (grant decided_at) by the due "
            "day; overdue = pending past it; answer time in working days on the official calendar",
        ),
        ("Delivered 交付", "delivered entries of the hubs' audit topics (xhub.audit.<hub>)"),
        ("Freshness 时效", "seconds from the source commit to the hub's delivery, latest records per topic"),
        (
            "Dead letters 死信",
            "records the department sent that were dead-lettered, by reason (谁产生谁负责)",
        ),
        (
            "Score 得分",
            "mean of what applies: share ratio, requests answered on time, records without a dead letter",
        ),
    ]
    items = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in notes)
    return f"<h2>说明 Definitions</h2><ul class='small'>{items}</ul>"
