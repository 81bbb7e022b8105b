"""Counters of one hub worker. Every consumed record ends, per subscription, as exactly one outcome."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

OUTCOMES = ("delivered", "filtered", "refused", "dead_lettered")


@dataclass(frozen=True, slots=True)
class Alert:
    """Something an operator must act on while the hub keeps serving (shown on the status page).

    ``kind``: ``config_refused`` (an applied config the hub cannot install; it keeps the policy it has).
    ``subject`` says which one.
    """

    kind: str
    subject: str
    message: str
    since_ms: int


@dataclass
class SubscriptionStats:
    delivered: int = 0
    filtered: int = 0
    refused: int = 0
    dead_lettered: int = 0
    last_source_commit_ms: int | None = None  # of the newest event delivered
    last_delivery_ms: int | None = None  # wall clock of the last delivery

    def total(self) -> int:
        return self.delivered + self.filtered + self.refused + self.dead_lettered


@dataclass
class WorkerStats:
    """Thread-safe counters read by the admin server (/metrics, status page)."""

    consumed: int = 0
    undecodable: int = 0  # dead-lettered before any subscription could see them
    transactions: int = 0
    aborted_transactions: int = 0
    config_refused: int = 0  # applied configs refused since start
    rejoins: int = 0  # fresh joins asked for: kafka-python left the member stranded (core/group_join.py)
    # Restore of the state store for the partitions last assigned (read by the monitor; see
    # hub/engine/state/restore.py): partitions and changelog records, done out of total.
    restore_partitions_total: int = 0
    restore_partitions_done: int = 0
    restore_records_done: int = 0
    restore_records_total: int = 0
    restore_seconds: float = 0.0  # duration of the last restore
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)  # (kind, subject) -> alert
    tx_seconds: list[float] = field(default_factory=list)  # recent transaction durations
    latency_ms: list[int] = field(default_factory=list)  # recent source-commit -> delivery latencies
    subscriptions: dict[str, SubscriptionStats] = field(
        default_factory=lambda: defaultdict(SubscriptionStats)
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_tx(self, seconds: float) -> None:
        with self.lock:
            self.transactions += 1
            self.tx_seconds.append(seconds)
            del self.tx_seconds[:-1000]

    def record_latencies(self, values: list[int]) -> None:
        with self.lock:
            self.latency_ms.extend(values)
            del self.latency_ms[:-10000]

    def alert(self, alert: Alert) -> None:
        """Raise ``alert`` (an alert of the same kind and subject keeps its first ``since_ms``)."""
        with self.lock:
            key = (alert.kind, alert.subject)
            known = self.alerts.get(key)
            if known is None or known.message != alert.message:
                since = known.since_ms if known is not None else alert.since_ms
                self.alerts[key] = Alert(alert.kind, alert.subject, alert.message, since)

    def clear_alerts(self, kind: str, keep: frozenset[str] = frozenset()) -> None:
        """Drop the alerts of ``kind`` except those whose subject is in ``keep``."""
        with self.lock:
            for key in [k for k in self.alerts if k[0] == kind and k[1] not in keep]:
                del self.alerts[key]
