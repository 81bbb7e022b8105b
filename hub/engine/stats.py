"""Counters of one hub worker. Every consumed record ends, per subscription, as exactly one outcome."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

OUTCOMES = ("delivered", "filtered", "refused", "dead_lettered")


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
