"""Prometheus metrics of one hub worker, collected on scrape from its counters and the monitor's snapshot.

Each admin server has its own ``CollectorRegistry`` (never the global one), so several hubs or workers in
one process do not mix. Names follow the Prometheus conventions: base units, ``_seconds``, ``_total``.

    xhub_worker_ready{hub}                                         1 once the worker consumes
    xhub_records_consumed_total{hub}                               source records read
    xhub_records_undecodable_total{hub}                            dead-lettered before any plan saw them
    xhub_records_{delivered,filtered,refused,dead_lettered}_total{hub,subscription}
    xhub_transactions_total{hub}, xhub_transactions_aborted_total{hub}
    xhub_transaction_duration_seconds{hub}                         histogram
    xhub_delivery_latency_seconds{hub}                             histogram, source commit -> delivery
    xhub_subscription_lag_records{hub,subscription,kind}           kind = hub | subscriber
    xhub_subscription_lag_seconds{hub,subscription,kind}           0 when nothing waits
    xhub_subscription_status{hub,subscription,kind,status}         1 for the current status, else 0
    xhub_subscription_consumers{hub,subscription,kind}             members of the consumer group
    xhub_subscription_last_delivery_timestamp_seconds{hub,subscription}
    xhub_dead_letters_total{hub,department,reason}                 bad records sent, per department
    xhub_records_not_applied_total{hub,department}                 deliveries a subscriber's sink refused
    xhub_registry_requests_total{hub,client,method,outcome}        counted by every RegistryClient
    xhub_monitor_refresh_errors_total{hub}, xhub_monitor_refresh_duration_seconds{hub},
    xhub_monitor_refresh_interval_seconds{hub}                     between refreshes (grows on big catalogs)
    xhub_monitor_last_refresh_timestamp_seconds{hub}

The path beyond the lags (backfills, restores, sources) is in ``hub.monitor.path_metrics``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from hub.engine.stats import OUTCOMES, WorkerStats
from hub.monitor.board import SubscriptionLag
from hub.monitor.lag import KINDS
from hub.monitor.snapshot import MonitorState, copy_stats
from hub.monitor.status import Status

TX_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class RingHistogram:
    """A cumulative histogram fed from a ring of recent values that only grows at its end.

    The worker keeps the last N values and a total count; each :meth:`feed` takes the values appended since
    the previous one (the newest ``total - seen``). Values that fell off the ring between two feeds (more
    than N in one scrape interval) are not observed.
    """

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self._seen: int | None = None

    def feed(self, ring: Sequence[float], total: int) -> None:
        if self._seen is None or total < self._seen:
            fresh = list(ring)  # first look (or the counters were reset): everything still in the ring
        else:
            n = min(total - self._seen, len(ring))
            fresh = list(ring[len(ring) - n :]) if n > 0 else []
        self._seen = total
        for value in fresh:
            self.observe(value)

    def observe(self, value: float) -> None:
        self.sum += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append((_le(bound), float(running)))
        out.append(("+Inf", float(running + self.counts[-1])))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


class HubCollector:
    """Collects the metrics of one hub worker on every scrape.

    Args:
        hub: hub name (the ``hub`` label).
        stats: the worker's counters.
        state: returns the monitor's latest snapshot.
        ready: returns whether the worker is ready.
        registry_clients: named registry clients whose request counts are exported.
        lag_series: collect the per-subscription lag series too; the admin server renders those with
            :class:`LagSeries` instead (cached per row: 10,000 subscriptions are 160,000 samples).
    """

    def __init__(
        self,
        hub: str,
        stats: WorkerStats,
        state: Callable[[], MonitorState],
        ready: Callable[[], bool],
        registry_clients: Mapping[str, Any] | None = None,
        *,
        lag_series: bool = True,
    ) -> None:
        self.hub = hub
        self.lag_series = lag_series
        self.stats = stats
        self.state = state
        self.ready = ready
        self.registry_clients = dict(registry_clients or {})
        self._lock = threading.Lock()
        self._tx = RingHistogram(TX_BUCKETS)
        self._latency = RingHistogram(LATENCY_BUCKETS)

    def feed(self) -> None:
        """Move new transaction durations and latencies into the histograms (also done on each scrape).

        The monitor thread calls this between scrapes, so fewer values fall off the worker's rings.
        """
        copy = copy_stats(self.stats, subscriptions=False)
        with self._lock:
            self._tx.feed(copy.tx_seconds, copy.transactions)
            self._latency.feed([ms / 1000 for ms in copy.latency_ms], copy.delivered)

    def describe(self) -> list[Metric]:
        return []  # collected on demand; nothing to describe up front

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        copy = copy_stats(self.stats)
        with self._lock:
            self._tx.feed(copy.tx_seconds, copy.transactions)
            self._latency.feed([ms / 1000 for ms in copy.latency_ms], copy.delivered)
            tx = HistogramMetricFamily(
                "xhub_transaction_duration_seconds",
                "Duration of the hub's Kafka transactions (one per batch).",
                labels=["hub"],
            )
            tx.add_metric([hub], self._tx.buckets(), self._tx.sum)
            latency = HistogramMetricFamily(
                "xhub_delivery_latency_seconds",
                "Time from the source commit of an event to its delivery by the hub.",
                labels=["hub"],
            )
            latency.add_metric([hub], self._latency.buckets(), self._latency.sum)
        state = self.state()

        ready = GaugeMetricFamily(
            "xhub_worker_ready", "1 once the hub worker consumes, else 0.", labels=["hub"]
        )
        ready.add_metric([hub], 1.0 if self.ready() else 0.0)
        yield ready
        yield _counter(
            "xhub_records_consumed_total", "Source records read by the hub worker.", hub, copy.consumed
        )
        yield _counter(
            "xhub_records_undecodable_total",
            "Source records dead-lettered before any subscription could see them.",
            hub,
            copy.undecodable,
        )
        yield _counter("xhub_transactions_total", "Kafka transactions committed.", hub, copy.transactions)
        yield _counter(
            "xhub_transactions_aborted_total",
            "Kafka transactions aborted (the batch is retried).",
            hub,
            copy.aborted_transactions,
        )
        yield tx
        yield latency

        for outcome in OUTCOMES:
            family = CounterMetricFamily(
                f"xhub_records_{outcome}_total",
                f"Source records {outcome.replace('_', '-')} per subscription.",
                labels=["hub", "subscription"],
            )
            for sid, counts in sorted(copy.subscriptions.items()):
                family.add_metric([hub, sid], float(getattr(counts, outcome)))
            yield family
        last = GaugeMetricFamily(
            "xhub_subscription_last_delivery_timestamp_seconds",
            "When the hub last delivered to the subscription (epoch seconds).",
            labels=["hub", "subscription"],
        )
        for sid, counts in sorted(copy.subscriptions.items()):
            if counts.last_delivery_ms is not None:
                last.add_metric([hub, sid], counts.last_delivery_ms / 1000)
        yield last

        if self.lag_series:
            yield from self._lag_metrics(state)
        yield from self._dead_letter_metrics(state)
        yield from self._registry_metrics()

        errors = _counter(
            "xhub_monitor_refresh_errors_total",
            "Lag refreshes that failed (Kafka did not answer).",
            hub,
            state.refresh_errors,
        )
        yield errors
        duration = GaugeMetricFamily(
            "xhub_monitor_refresh_duration_seconds", "How long the last lag refresh took.", labels=["hub"]
        )
        stamp = GaugeMetricFamily(
            "xhub_monitor_last_refresh_timestamp_seconds",
            "When the lags were last measured (epoch seconds).",
            labels=["hub"],
        )
        period = GaugeMetricFamily(
            "xhub_monitor_refresh_interval_seconds",
            "Seconds between lag refreshes: the configured interval, longer when refreshes are slow.",
            labels=["hub"],
        )
        if state.refresh_seconds is not None:
            duration.add_metric([hub], state.refresh_seconds)
        if state.refreshed_ms is not None:
            stamp.add_metric([hub], state.refreshed_ms / 1000)
        if state.period is not None:
            period.add_metric([hub], state.period)
        yield duration
        yield period
        yield stamp

    def _lag_metrics(self, state: MonitorState) -> Iterator[Metric]:
        hub = self.hub
        labels = ["hub", "subscription", "kind"]
        records = GaugeMetricFamily(
            "xhub_subscription_lag_records",
            "Records waiting: end offsets minus committed offsets (kind=hub: the hub on "
            "the source topic; kind=subscriber: the sidecar on the delivery topic).",
            labels=labels,
        )
        seconds = GaugeMetricFamily(
            "xhub_subscription_lag_seconds",
            "Age of the oldest waiting event since its source commit; 0 when none waits.",
            labels=labels,
        )
        status = GaugeMetricFamily(
            "xhub_subscription_status",
            "1 for the subscription's current status (OK, WARN, STALL, STOP, REWIND).",
            labels=[*labels, "status"],
        )
        consumers = GaugeMetricFamily(
            "xhub_subscription_consumers",
            "Members of the consumer group reading for this subscription.",
            labels=labels,
        )
        for row in state.rows:
            for kind in KINDS:
                view = row.kind(kind)
                key = [hub, row.target.subscription, kind]
                if view.lag.error is None:
                    records.add_metric(key, float(view.lag.lag_records))
                    lag_s = view.lag.lag_seconds
                    if lag_s is not None:
                        seconds.add_metric(key, lag_s)
                for s in Status:
                    status.add_metric([*key, s.value], 1.0 if view.status is s else 0.0)
                if view.lag.members is not None:
                    consumers.add_metric(key, float(view.lag.members))
        yield records
        yield seconds
        yield status
        yield consumers

    def _dead_letter_metrics(self, state: MonitorState) -> Iterator[Metric]:
        hub = self.hub
        sent = CounterMetricFamily(
            "xhub_dead_letters_total",
            "Dead letters per sending department and reason (bad records sent).",
            labels=["hub", "department", "reason"],
        )
        refused = CounterMetricFamily(
            "xhub_records_not_applied_total",
            "Deliveries a department's sinks could not apply (in its dead letters).",
            labels=["hub", "department"],
        )
        for dept, counts in sorted(state.dead_letters.items()):
            for reason, n in sorted(counts.by_reason.items()):
                sent.add_metric([hub, dept, reason], float(n))
            refused.add_metric([hub, dept], float(counts.not_applied))
        yield sent
        yield refused

    def _registry_metrics(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "xhub_registry_requests_total",
            "HTTP requests to the schema registry, per client, method and outcome.",
            labels=["hub", "client", "method", "outcome"],
        )
        for name, client in sorted(self.registry_clients.items()):
            for (method, outcome), n in sorted(registry_request_counts(client).items()):
                family.add_metric([self.hub, name, method, outcome], float(n))
        yield family


_LAG_FAMILIES = (
    (
        "xhub_subscription_lag_records",
        "Records waiting: end offsets minus committed offsets (kind=hub: the hub on "
        "the source topic; kind=subscriber: the sidecar on the delivery topic).",
    ),
    (
        "xhub_subscription_lag_seconds",
        "Age of the oldest waiting event since its source commit; 0 when none waits.",
    ),
    ("xhub_subscription_status", "1 for the subscription's current status (OK, WARN, STALL, STOP, REWIND)."),
    ("xhub_subscription_consumers", "Members of the consumer group reading for this subscription."),
)


_number: Callable[[float], str] = floatToGoString  # the value format generate_latest uses


def _label(value: str) -> str:
    """A label value of the text exposition format, quoted and escaped."""
    return '"' + value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"") + '"'


class LagSeries:
    """The per-subscription lag series of /metrics as text, rendered once per row object.

    The same four families :class:`HubCollector` collects with ``lag_series=True``, in the Prometheus text
    format. The board keeps the row of an unchanged subscription (see ``hub.monitor.board``), so a scrape
    renders only the rows that changed since the previous one. Thread-safe.

    Args:
        hub: hub name (the ``hub`` label).
    """

    def __init__(self, hub: str) -> None:
        self.hub = hub
        self._lock = threading.Lock()
        self._blocks: dict[str, tuple[SubscriptionLag, tuple[str, str, str, str]]] = {}

    def render(self, rows: Sequence[SubscriptionLag]) -> bytes:
        """The four families with one block of samples per row."""
        parts: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
        with self._lock:
            cache = self._blocks
            fresh: dict[str, tuple[SubscriptionLag, tuple[str, str, str, str]]] = {}
            for row in rows:
                cached = cache.get(row.target.subscription)
                blocks = cached[1] if cached is not None and cached[0] is row else self._row(row)
                fresh[row.target.subscription] = (row, blocks)
                for part, block in zip(parts, blocks, strict=True):
                    part.append(block)
            self._blocks = fresh
        out: list[str] = []
        for (name, doc), part in zip(_LAG_FAMILIES, parts, strict=True):
            out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n")
            out.extend(part)
        return "".join(out).encode("utf-8")

    def _row(self, row: SubscriptionLag) -> tuple[str, str, str, str]:
        records: list[str] = []
        seconds: list[str] = []
        status: list[str] = []
        consumers: list[str] = []
        hub_sub = f"hub={_label(self.hub)},subscription={_label(row.target.subscription)}"
        for kind in KINDS:
            view = row.kind(kind)
            labels = f"{hub_sub},kind={_label(kind)}"
            if view.lag.error is None:
                records.append(f"xhub_subscription_lag_records{{{labels}}} {_number(view.lag.lag_records)}\n")
                lag_s = view.lag.lag_seconds
                if lag_s is not None:
                    seconds.append(f"xhub_subscription_lag_seconds{{{labels}}} {_number(lag_s)}\n")
            for s in Status:
                value = "1.0" if view.status is s else "0.0"
                status.append(f"xhub_subscription_status{{{labels},status={_label(s.value)}}} {value}\n")
            if view.lag.members is not None:
                consumers.append(f"xhub_subscription_consumers{{{labels}}} {_number(view.lag.members)}\n")
        return "".join(records), "".join(seconds), "".join(status), "".join(consumers)


def registry_request_counts(client: Any) -> dict[tuple[str, str], int]:
    """Request counts a registry client keeps: ``client.request_counts`` maps (method, outcome) to a count.

    ``hub.core.registry.client.RegistryClient`` counts every request it makes; a client object without
    that attribute (a test double) exports nothing.
    """
    counts = getattr(client, "request_counts", None)
    if not isinstance(counts, Mapping):
        return {}
    out: dict[tuple[str, str], int] = {}
    for key, value in counts.items():
        if isinstance(key, tuple) and len(key) == 2 and isinstance(value, int):
            out[(str(key[0]), str(key[1]))] = value
    return out


def _counter(name: str, doc: str, hub: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["hub"])
    family.add_metric([hub], float(value))
    return family
