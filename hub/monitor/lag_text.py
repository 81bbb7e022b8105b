"""How ``xhub lag`` prints: the table of subscriptions and, under it, backfills, restores, sources and
whether the whole path is drained."""

from __future__ import annotations

import time
from collections.abc import Sequence

from hub.monitor.board import KindView, SubscriptionLag
from hub.monitor.lag_path import HubFigures, hub_ages
from hub.monitor.path import PathState
from hub.monitor.status import Status
from hub.monitor.text import format_seconds, text_table


def format_lag_table(rows: Sequence[SubscriptionLag], figures: Sequence[HubFigures] = ()) -> str:
    """One line per subscription; the reason of any status other than OK at the end of its line.

    An age this identity may not read (no READ on the topic) is the hub's own figure from its admin port
    in ``figures``, marked ``*``, else ``no READ``; a line under the table says so and where to look.
    """
    ages = hub_ages(figures)
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
            f"{kind}: {view.verdict.reason}"
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
                _age(r.hub, ages.get((r.target.subscription, "hub"))),
                _records(r.subscriber),
                _age(r.subscriber, ages.get((r.target.subscription, "subscriber"))),
                "; ".join(notes),
            )
        )
    lines = text_table(table, frozenset({5, 6, 7, 8}))
    if any(view.lag.unread for r in rows for view in (r.hub, r.subscriber)):
        lines.append(_unread_line(ages))
    return "\n".join(lines)


def _age(view: KindView, hub_age: tuple[float | None, str] | None) -> str:
    if view.lag.unread is None or view.lag.lag_seconds is not None:
        return format_seconds(view.lag.lag_seconds)
    if hub_age is not None and hub_age[0] is not None:
        return format_seconds(hub_age[0]) + "*"
    return "no READ"


def _unread_line(ages: dict[tuple[str, str], tuple[float | None, str]]) -> str:
    sources = sorted({source for _, source in ages.values()})
    where = (
        f"* the hub's own figure, from its {', '.join(sources)}"
        if sources
        else "the hub's admin port has them (--admin URL; its status page, /api/status, /metrics "
        "xhub_subscription_lag_seconds)"
    )
    return (
        "AGE      not permitted (no READ on delivery and source topics for this identity): lag in records "
        f"from offsets, commit markers included (an upper bound); {where}"
    )


def _records(view: KindView) -> str:
    records = view.records
    return "n/a" if records is None else f"{records:,}"


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
