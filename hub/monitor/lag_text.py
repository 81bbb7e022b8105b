"""How ``xhub lag`` prints: the table of subscriptions and, under it, backfills, restores, sources and
whether the whole path is drained."""

from __future__ import annotations

import time
from collections.abc import Sequence

from hub.monitor.board import KindView, SubscriptionLag
from hub.monitor.lag_path import HubFigures
from hub.monitor.path import PathState
from hub.monitor.status import Status
from hub.monitor.text import format_seconds, text_table


def format_lag_table(rows: Sequence[SubscriptionLag]) -> str:
    """One line per subscription; the reason of any status other than OK at the end of its line.

    A lag this identity may not read (no READ on the topic) shows the hub's own records, age and status
    from its admin port when ``rows`` carry them (``lag_path.with_hub_figures``), marked ``*``; else its
    records from offsets and ``no READ`` as its age. A line under the table says so and where to look.
    """
    header = (
        "HUB",
        "SUBSCRIPTION",
        "SUBSCRIBER",
        "RESOURCE",
        "STATUS",
        "HUB LAG",
        "HUB AGE",
        "SUB LAG",
        "SUB AGE",
        "NOTE",
    )
    table: list[tuple[str, ...]] = [header]
    for r in rows:
        notes = [
            f"{kind}{'*' if view.hub_figure is not None else ''}: {view.verdict.reason}"
            for kind, view in (("hub", r.hub), ("subscriber", r.subscriber))
            if view.status is not Status.OK or view.lag.elsewhere is not None
        ]
        if r.target.refusal:
            notes.insert(0, f"not delivered: {r.target.refusal}")
        table.append(
            (
                r.target.hub,
                r.target.subscription,
                r.target.subscriber,
                r.target.resource,
                r.status.value,
                _records(r.hub),
                _age(r.hub),
                _records(r.subscriber),
                _age(r.subscriber),
                "; ".join(notes),
            )
        )
    lines = text_table(table, frozenset({5, 6, 7, 8}))
    views = [view for r in rows for view in (r.hub, r.subscriber) if view.lag.unread]
    if views:
        lines.append(_unread_line(views))
    return "\n".join(lines)


def _age(view: KindView) -> str:
    if view.hub_figure is not None:
        return format_seconds(view.hub_figure.seconds) + "*"
    if view.lag.unread is None or view.lag.lag_seconds is not None:
        return format_seconds(view.lag.lag_seconds)
    return "no READ"


def _unread_line(views: Sequence[KindView]) -> str:
    sources = sorted({v.hub_figure.source for v in views if v.hub_figure is not None})
    parts = ["AGE      not permitted (no READ on delivery and source topics for this identity)"]
    if sources:
        parts.append(f"* the hub's own figure (records, age and status), from its {', '.join(sources)}")
    if any(v.hub_figure is None for v in views):  # some lag shown from offsets
        parts.append(
            ("unmarked: " if sources else "")
            + "lag in records from offsets, commit markers included (an upper bound; a lone offset "
            "after a partition's position is its last commit marker, not judged as waiting); the hub's admin "
            "port has its own figures (--admin URL; its status page, /api/status, /metrics "
            "xhub_subscription_lag_seconds)"
        )
    return "; ".join(parts)


def _records(view: KindView) -> str:
    records = view.records
    text = "n/a" if records is None else f"{records:,}"
    return text + "*" if view.hub_figure is not None else text


def format_path(state: PathState, figures: Sequence[HubFigures]) -> str:
    """The text sections ``xhub lag`` prints under its table: backfills, restore, sources, drained."""
    lines: list[str] = []
    if state.backfills:
        rows: list[tuple[str, ...]] = [("BACKFILL", "STATE", "DONE", "TOTAL", "RATE/S", "ETA")]
        for sid, p in sorted(state.backfills.items()):
            rows.append(
                (
                    sid,
                    p.state,
                    f"{p.done:,}",
                    "?" if p.total is None else f"{p.total:,}",
                    "" if p.per_second is None else f"{p.per_second:,.0f}",
                    "done"
                    if p.finished
                    else ("?" if p.eta_seconds is None else format_seconds(p.eta_seconds)),
                )
            )
        lines += ["", *text_table(rows, frozenset({2, 3, 4, 5}))]
    lines.append("")
    for f in figures:
        r = f.restore
        if r is None:
            lines.append(f"RESTORE  {f.hub}: unknown ({f.source})")
        elif not r.partitions_total:
            lines.append(f"RESTORE  {f.hub}: none since the hub started")
        else:
            total = "?" if r.records.total is None else f"{r.records.total:,}"
            eta = (
                ""
                if not r.running or r.records.eta_seconds is None
                else f", ETA {format_seconds(r.records.eta_seconds)}"
            )
            what = "restoring" if r.running else "restored"
            lines.append(
                f"RESTORE  {f.hub}: {what} {r.partitions_done}/{r.partitions_total} partitions, "
                f"{r.records.done:,} / {total} records{eta}"
            )
    lines.append("")
    if state.sources_error:
        lines.append(f"SOURCES  not read: {state.sources_error}")
    elif state.sources:
        rows = [("DEPARTMENT", "SOURCE", "STATUS", "UNPUBLISHED", "OLDEST", "REPORTED", "NOTE")]
        now_ms = time.time_ns() // 1_000_000
        for v in state.sources:
            quiet = v.status is Status.OK and v.rows == 0 and not v.stale
            if v.backlog is not None and v.backlog.wal_held_bytes is not None:
                quiet = False  # a logical-decoding slot: the WAL it holds is its backlog
            rows.append(
                (
                    v.department,
                    v.source or "-",
                    v.status.value,
                    "?" if v.rows is None else f"{v.rows:,}",
                    format_seconds(v.oldest_seconds),
                    "never"
                    if v.reported_ms is None
                    else f"{format_seconds(max(0.0, (now_ms - v.reported_ms) / 1000))} ago",
                    "" if quiet else v.reason,
                )
            )
        lines += text_table(rows, frozenset({3, 4, 5}))
    lines.append("")
    if state.drained:
        lines.append("PATH     drained: nothing waits from the source databases to the subscribers")
    else:
        lines.append(
            "PATH     not drained: " + "; ".join(state.reasons or ("a part of the path is not known",))
        )
    return "\n".join(lines)
