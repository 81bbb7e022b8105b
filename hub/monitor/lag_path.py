"""``xhub lag`` beyond the lags: backfills, state-store restore, the sidecars' source backlogs, drained?

Where each figure comes from when ``xhub lag`` runs apart from the hub:

- source backlogs: the sidecars' reports on ``xhub.pos.<dept>`` (``hub.monitor.backlog``), through Kafka,
  wherever the sidecar runs;
- backfills and restore: the hub's admin port (``/api/status``), which has the worker's own figures; the
  URL is ``--admin`` or ``http://127.0.0.1:<admin_port>`` from hubs.yaml. When it does not answer, backfills
  are read from the hub group's committed offsets (``hub.engine.handover.progress_from_offsets``) and the
  restore is unknown (the table says so);
- lags ``xhub lag`` may not read itself (the operator has no READ on delivery and source topics): the hub
  measures them with its own READ (data records counted, commit markers not; their age; their status over
  its own window), and its admin port's document has them; :func:`with_hub_figures` shows those instead.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafka import TopicPartition

from hub.core.log import get_logger
from hub.monitor.backlog import BacklogReader, SourceBacklogView, source_views
from hub.monitor.board import HubFigure, KindView, SubscriptionLag
from hub.monitor.lag import KINDS
from hub.monitor.path import PathState, path_state
from hub.monitor.progress import DONE, Progress, ProgressTracker, RestoreProgress
from hub.monitor.status import Rules, Status

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir

log = get_logger("monitor.lag_path")

ADMIN_TIMEOUT_S = 2.0

_STATUSES = frozenset(s.value for s in Status)


@dataclass(frozen=True, slots=True)
class HubFigures:
    """What one hub's admin port (or, failing it, its committed offsets) says of its own work."""

    hub: str
    backfills: Mapping[str, Progress]
    restore: RestoreProgress | None  # None: unknown (admin port not reachable)
    source: str  # where the figures come from, for the operator
    # (subscription, kind) -> the lag as the hub measured it (admin port only)
    lags: Mapping[tuple[str, str], HubFigure] = field(default_factory=dict)


def admin_urls(cfg: ConfigDir, hubs: Sequence[str], admin: str | None) -> dict[str, str | None]:
    """The admin URL of each hub: ``admin`` when given (one hub), else loopback and hubs.yaml's port."""
    out: dict[str, str | None] = {}
    for hub in hubs:
        if admin:
            out[hub] = admin.rstrip("/")
            continue
        port = cfg.hubs[hub].admin_port if hub in cfg.hubs else 0
        out[hub] = f"http://127.0.0.1:{port}" if port else None
    return out


def read_admin(url: str, timeout: float = ADMIN_TIMEOUT_S) -> dict[str, Any]:
    """The /api/status document of a hub's admin port.

    Raises:
        OSError: it did not answer (urllib's errors are OSErrors), or answered with something else.
    """
    with urllib.request.urlopen(f"{url}/api/status", timeout=timeout) as response:  # noqa: S310 - http(s) URL of the operator's hub
        body = json.loads(response.read())
    if not isinstance(body, dict) or "subscriptions" not in body:
        raise OSError(f"{url}/api/status is not a hub status document")
    return body


def check_hub(url: str, hub: str, doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """``doc`` when it is ``hub``'s (another hub may listen on that port of this machine), else OSError."""
    if doc.get("hub") != hub:
        raise OSError(f"{url} serves hub {doc.get('hub')!r}, not {hub!r}")
    return doc


def figures_of_status(hub: str, url: str, doc: Mapping[str, Any]) -> HubFigures:
    """Backfills, restore and lags of one hub from its /api/status document."""
    source = f"admin port {url}"
    backfills: dict[str, Progress] = {}
    lags: dict[tuple[str, str], HubFigure] = {}
    for item in doc.get("subscriptions") or []:
        if not isinstance(item, dict):
            continue
        for kind in KINDS:
            figure = hub_figure(item.get(f"{kind}_lag"), source)
            if figure is not None:
                lags[(str(item["subscription"]), kind)] = figure
        b = item.get("backfill")
        if isinstance(b, dict):
            backfills[str(item["subscription"])] = Progress(
                int(b.get("records_done") or 0),
                b.get("records_total"),
                str(b.get("state") or ""),
                b.get("per_second"),
                b.get("eta_seconds"),
            )
    path = doc.get("path") or {}
    r = path.get("restore") if isinstance(path, dict) else None
    restore = RestoreProgress()
    if isinstance(r, dict) and r.get("partitions_total"):
        restore = RestoreProgress(
            int(r["partitions_total"]),
            int(r.get("partitions_done") or 0),
            Progress(
                int(r.get("records_done") or 0),
                r.get("records_total"),
                str(r.get("state") or DONE),
                r.get("per_second"),
                r.get("eta_seconds"),
            ),
        )
    return HubFigures(hub, backfills, restore, source, lags)


def hub_figure(lag: Any, source: str) -> HubFigure | None:
    """One lag of a hub's /api/status (``KindView.to_json``), when the hub measured it by reading: None
    before its first measurement, or when the hub could not read the topic either."""
    if not isinstance(lag, dict) or lag.get("unread") or lag.get("status") not in _STATUSES:
        return None
    records, seconds = lag.get("lag_records"), lag.get("lag_seconds")
    return HubFigure(
        records if isinstance(records, int) else None,
        float(seconds) if isinstance(seconds, int | float) else None,
        Status(lag["status"]),
        str(lag.get("reason") or ""),
        source,
    )


def figures_of_offsets(cfg: ConfigDir, hub: str, tracker: ProgressTracker, now: float) -> HubFigures:
    """Backfills of one hub read from its state changelog ``xhub.state.<hub>`` (the restore stays unknown).

    Used when the hub's admin port cannot be reached: the changelog holds where every subscription
    stands on every source partition, committed with the deliveries it accounts for.
    """
    from hub.core import names
    from hub.core.kafka import make_consumer
    from hub.engine.handover import Backfilling, partition_progress
    from hub.engine.state.changelog import HandoverEntry, decode

    kafka = cfg.hubs_file.kafka
    consumer = make_consumer(kafka, f"lag-{hub}-backfills", group_id=None)
    standing: dict[tuple[Any, str], Backfilling] = {}
    try:
        topic = names.state_topic(hub)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if tps:
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            deadline = time.monotonic() + 10
            while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                    for rec in records:
                        entry = decode(rec.key, rec.value)
                        if not isinstance(entry, HandoverEntry):
                            continue
                        if isinstance(entry.handover, Backfilling):
                            standing[(entry.tp, entry.sid)] = entry.handover
                        else:
                            standing.pop((entry.tp, entry.sid), None)
        starts: dict[Any, int] = {}
        sources = sorted({tp for tp, _ in standing}, key=lambda tp: (tp.topic, tp.partition))
        if sources:
            starts = {tp: int(v) for tp, v in consumer.beginning_offsets(sources).items()}
    finally:
        consumer.close()
    sums: dict[str, list[int]] = {}
    catching: dict[str, bool] = {}
    for (tp, sid), h in standing.items():
        done, total = partition_progress(h, starts.get(tp, 0))
        acc = sums.setdefault(sid, [0, 0])
        acc[0] += done
        acc[1] += total
        catching[sid] = catching.get(sid, True) and h.catching_up
    figures = {
        sid: (done, total, "catching_up" if catching[sid] else "delivering")
        for sid, (done, total) in sums.items()
    }
    return HubFigures(hub, tracker.backfills(now, figures), None, f"state changelog {names.state_topic(hub)}")


class PathSampler:
    """Samples what ``xhub lag`` shows beyond the lags, once per refresh. Not thread-safe.

    Args:
        cfg: the config directory.
        hubs: the hubs shown.
        rules: the status window (judges the source backlogs).
        admin: the admin URL given on the command line (one hub), or None.
    """

    def __init__(self, cfg: ConfigDir, hubs: Sequence[str], rules: Rules, admin: str | None = None) -> None:
        self.cfg = cfg
        self.rules = rules
        self.urls = admin_urls(cfg, hubs, admin)
        self.tracker = ProgressTracker(rules.window)
        self.figures: list[HubFigures] = []
        self._reader: BacklogReader | None = None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def sample(self, rows: Sequence[SubscriptionLag]) -> PathState:
        """The path of ``rows`` now (their owners' sources, their hubs' backfills and restores)."""
        now = time.time()
        self.figures = [self._hub(hub, url, now) for hub, url in self.urls.items()]
        backfills: dict[str, Progress] = {}
        for f in self.figures:
            backfills.update(f.backfills)
        sources, error = self._sources(sorted({r.target.owner for r in rows}))
        return path_state(rows, backfills, combined_restore(self.figures), sources, error)

    def _hub(self, hub: str, url: str | None, now: float) -> HubFigures:
        if url is not None:
            try:
                return figures_of_status(hub, url, check_hub(url, hub, read_admin(url)))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.debug("lag_admin_unreachable", hub=hub, url=url, error=type(exc).__name__)
        try:
            return figures_of_offsets(self.cfg, hub, self.tracker, now)
        except Exception as exc:  # noqa: BLE001 - the lags are still worth printing; the gap is named
            return HubFigures(hub, {}, None, f"not read: {type(exc).__name__}: {exc}")

    def _sources(self, owners: list[str]) -> tuple[tuple[SourceBacklogView, ...], str | None]:
        try:
            if self._reader is None:
                self._reader = BacklogReader(self.cfg.hubs_file.kafka, client_id="lag-backlog")
            reports = self._reader.latest(owners)
        except Exception as exc:  # noqa: BLE001 - reported in the output
            return (), f"{type(exc).__name__}: {exc}"
        return source_views(reports, self.rules, time.time_ns() // 1_000_000), None


def combined_restore(figures: Sequence[HubFigures]) -> RestoreProgress:
    """The restores of several hubs as one (sums); unknown ones count as none."""
    known = [f.restore for f in figures if f.restore is not None and f.restore.partitions_total]
    if not known:
        return RestoreProgress()
    if len(known) == 1:
        return known[0]
    totals = [r.records.total for r in known]
    etas = [r.records.eta_seconds for r in known if r.running]
    running = any(r.running for r in known)
    return RestoreProgress(
        sum(r.partitions_total for r in known),
        sum(r.partitions_done for r in known),
        Progress(
            sum(r.records.done for r in known),
            None if None in totals else sum(t or 0 for t in totals),
            "restoring" if running else DONE,
            None,
            max((e for e in etas if e is not None), default=None) if running else 0.0,
        ),
    )


def with_hub_figures(rows: Sequence[SubscriptionLag], figures: Sequence[HubFigures]) -> list[SubscriptionLag]:
    """``rows`` with the hub's own figure for each lag this identity could not read (``unread``), where the
    hub's admin port answered with one: the hub counts data records (commit markers excluded) and judges
    its status from them, where offsets alone count every transaction's marker as a waiting record.

    A lag without such a figure keeps its offsets (an upper bound) and the status judged from them; rows
    with nothing to replace are kept as they are.
    """
    lags = {(f.hub, sub, kind): lag for f in figures for (sub, kind), lag in f.lags.items()}
    if not lags:
        return list(rows)
    out: list[SubscriptionLag] = []
    for row in rows:
        views = [row.hub, row.subscriber]
        for i, kind in enumerate(KINDS):
            figure = lags.get((row.target.hub, row.target.subscription, kind))
            if figure is not None and views[i].lag.unread is not None:
                views[i] = KindView.of_hub_figure(views[i].lag, figure)
        changed = views[0] is not row.hub or views[1] is not row.subscriber
        out.append(SubscriptionLag(row.target, views[0], views[1]) if changed else row)
    return out


def sources_ok(state: PathState) -> bool:
    """No source backlog STALL or STOP (a department that never reported is WARN, not counted)."""
    return all(v.status.severity < Status.STALL.severity for v in state.sources)


def path_document(state: PathState, figures: Sequence[HubFigures]) -> dict[str, Any]:
    """The ``path`` part of ``xhub lag --json`` (each subscription's part is in :func:`subscription_path`)."""
    return {**state.head_json(), "figures_from": {f.hub: f.source for f in figures}}


def subscription_path(state: PathState, sid: str) -> dict[str, Any]:
    """One subscription's backfill, source backlog and path lag, for ``xhub lag --json``."""
    backfill = state.backfills.get(sid)
    path = state.paths.get(sid)
    return {
        "backfill": backfill.to_json() if backfill is not None else None,
        "source_backlog": path.to_json() if path is not None else None,
        "path_lag_seconds": None if path is None or path.seconds is None else round(path.seconds, 1),
        "drained": path.drained if path is not None else None,
    }
