"""How well each department shares (共享考核): ``xhub report``.

Per department:

    resources          catalog resources it owns, by share attribute, and its share ratio
                       (unconditional / all; ``shareable_ratio`` also counts conditional ones);
    subscriptions      served (to resources it owns; active ones apart) and held (as subscriber);
    records delivered  to subscribers from its resources, counted from the hubs' audit topics
                       (xhub.audit.<hub>, entries of kind "delivered"): the audit is the legal record of
                       every disclosure, kept forever and exact (delivery topic offsets also count
                       transaction markers and expire with retention);
    freshness          p50 and p99 seconds from source commit to delivery, over the last ``sample`` records
                       of each delivery topic of its resources (the record's Kafka timestamp, set when the
                       hub produced it, minus the envelope's ``source.commit_ts_ms``);
    bad records sent   dead letters attributed to it (see ``hub.monitor.dead_letters``), by reason, and
                       the deliveries its own sinks could not apply.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from hub.audit.reader import batch_entries
from hub.catalog.model import ShareAttribute
from hub.core import names
from hub.core.errors import HubError
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.monitor.dead_letters import DeadLetterTally
from hub.monitor.errors import LagUnavailable
from hub.monitor.lag import Decoder, source_commit_ms
from hub.monitor.snapshot import percentile

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir

log = get_logger("monitor.report")


@dataclass
class DepartmentReport:
    """The sharing figures of one department."""

    department: str
    name: str
    resources: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((s.value for s in ShareAttribute), 0)
    )
    subscriptions_served: int = 0
    subscriptions_served_active: int = 0
    subscriptions_held: int = 0
    records_delivered: int = 0
    freshness_seconds: list[float] = field(default_factory=list)
    bad_records_sent: int = 0
    bad_records_by_reason: dict[str, int] = field(default_factory=dict)
    records_not_applied: int = 0

    @property
    def resources_total(self) -> int:
        return sum(self.resources.values())

    @property
    def share_ratio(self) -> float | None:
        """Unconditionally shared resources / all its resources (None when it owns none)."""
        total = self.resources_total
        return self.resources[ShareAttribute.UNCONDITIONAL.value] / total if total else None

    @property
    def shareable_ratio(self) -> float | None:
        """Unconditional and conditional resources / all its resources (None when it owns none)."""
        total = self.resources_total
        shareable = total - self.resources[ShareAttribute.NOT_SHARED.value]
        return shareable / total if total else None

    def to_json(self) -> dict[str, Any]:
        p50, p99 = percentile(self.freshness_seconds, 0.5), percentile(self.freshness_seconds, 0.99)
        return {
            "department": self.department,
            "name": self.name,
            "resources": dict(self.resources),
            "resources_total": self.resources_total,
            "share_ratio": _round(self.share_ratio),
            "shareable_ratio": _round(self.shareable_ratio),
            "subscriptions_served": self.subscriptions_served,
            "subscriptions_served_active": self.subscriptions_served_active,
            "subscriptions_held": self.subscriptions_held,
            "records_delivered": self.records_delivered,
            "freshness": {
                "p50_seconds": _round(p50),
                "p99_seconds": _round(p99),
                "samples": len(self.freshness_seconds),
            },
            "bad_records_sent": self.bad_records_sent,
            "bad_records_by_reason": dict(sorted(self.bad_records_by_reason.items())),
            "records_not_applied": self.records_not_applied,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass
class SharingReport:
    generated_ms: int
    hubs: list[str]
    departments: list[DepartmentReport]
    audit_entries: int = 0
    undecodable_audit_entries: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_ms": self.generated_ms,
            "hubs": self.hubs,
            "audit_entries_read": self.audit_entries,
            "undecodable_audit_entries": self.undecodable_audit_entries,
            "departments": [d.to_json() for d in self.departments],
        }


def catalog_figures(cfg: ConfigDir) -> dict[str, DepartmentReport]:
    """The figures that come from the config alone: resources by share attribute, subscriptions."""
    out = {d.id: DepartmentReport(d.id, d.name) for d in sorted(cfg.departments.values(), key=lambda d: d.id)}

    def of(dept: str) -> DepartmentReport:
        return out.setdefault(dept, DepartmentReport(dept, dept))

    for resource in cfg.resources.values():
        of(resource.owner).resources[resource.share.value] += 1
    for sub in cfg.subscriptions.values():
        provider = cfg.resources.get(sub.resource)
        if provider is not None:
            served = of(provider.owner)
            served.subscriptions_served += 1
            served.subscriptions_served_active += int(sub.active)
        of(sub.subscriber).subscriptions_held += 1
    return out


def build_report(
    cfg: ConfigDir, decoder: Decoder, *, sample: int = 1000, timeout: float = 60.0
) -> SharingReport:
    """Read the audit, delivery and dead-letter topics and build the report.

    Args:
        cfg: the config directory (catalog, subscriptions, hubs, Kafka settings).
        decoder: reads audit entries and delivery envelopes (``AvroSerde``).
        sample: records read from the end of each delivery topic for freshness.
        timeout: seconds allowed for reading each family of topics.

    Raises:
        LagUnavailable: Kafka did not answer.
    """
    kafka = cfg.hubs_file.kafka
    report = SharingReport(time.time_ns() // 1_000_000, sorted(cfg.hubs), [])
    depts = catalog_figures(cfg)
    owner_of_sub = {
        sid: cfg.resources[s.resource].owner
        for sid, s in cfg.subscriptions.items()
        if s.resource in cfg.resources
    }
    try:
        delivered, read, bad = _count_deliveries(cfg, kafka, decoder, owner_of_sub, timeout)
        report.audit_entries, report.undecodable_audit_entries = read, bad
        for dept, n in delivered.items():
            depts.setdefault(dept, DepartmentReport(dept, dept)).records_delivered = n
        for dept, ages in _freshness(
            cfg, kafka=kafka, decoder=decoder, owner_of_sub=owner_of_sub, sample=sample, timeout=timeout
        ).items():
            depts.setdefault(dept, DepartmentReport(dept, dept)).freshness_seconds = ages
        tally = DeadLetterTally(kafka, [*cfg.departments, *cfg.hubs], client_id="report-dlq")
        try:
            dead = tally.refresh(timeout=timeout)
        finally:
            tally.close()
    except KafkaError as exc:
        raise LagUnavailable(
            f"sharing report: Kafka at {kafka.bootstrap_servers} answered {type(exc).__name__}: {exc}"
        ) from exc
    for dept, counts in dead.items():
        entry = depts.setdefault(dept, DepartmentReport(dept, dept))
        entry.bad_records_sent = counts.sent
        entry.bad_records_by_reason = dict(counts.by_reason)
        entry.records_not_applied = counts.not_applied
    report.departments = [depts[d] for d in sorted(depts)]
    return report


def _existing_partitions(consumer: Any, topic_names: list[str]) -> list[TopicPartition]:
    known = consumer.topics()
    return [
        TopicPartition(t, p)
        for t in topic_names
        if t in known
        for p in sorted(consumer.partitions_for_topic(t) or ())
    ]


def _count_deliveries(
    cfg: ConfigDir, kafka: KafkaSettings, decoder: Decoder, owner_of_sub: Mapping[str, str], timeout: float
) -> tuple[dict[str, int], int, int]:
    """Delivered records per providing department from the audit topics: (counts, entries, undecodable)."""
    counts: Counter[str] = Counter()
    read = bad = 0
    consumer = make_consumer(kafka, "report-audit", group_id=None, max_poll_records=5000)
    try:
        tps = _existing_partitions(consumer, [names.audit_topic(h) for h in sorted(cfg.hubs)])
        if not tps:
            return {}, 0, 0
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        behind = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        while behind and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    entries = batch_entries(decoder, rec.value)  # one audit record per batch and chain
                    if entries is None:
                        read += 1
                        bad += 1
                        continue
                    read += len(entries)
                    for entry in entries:
                        if entry.get("kind") != "delivered":
                            continue
                        owner = owner_of_sub.get(str(entry.get("subscription"))) or _owner_of_resource(
                            cfg, str(entry.get("resource"))
                        )
                        counts[owner] += 1
            behind = {tp for tp in behind if consumer.position(tp) < ends[tp]}
        if behind:
            log.warning(
                "report_audit_incomplete", topics=sorted({tp.topic for tp in behind}), seconds=timeout
            )
    finally:
        consumer.close()
    return dict(counts), read, bad


def _owner_of_resource(cfg: ConfigDir, code: str) -> str:
    resource = cfg.resources.get(code)
    return resource.owner if resource is not None else f"unknown resource {code}"


def _freshness(
    cfg: ConfigDir,
    *,
    kafka: KafkaSettings,
    decoder: Decoder,
    owner_of_sub: Mapping[str, str],
    sample: int,
    timeout: float,
) -> dict[str, list[float]]:
    """Seconds from source commit to delivery of the last ``sample`` records of each delivery topic."""
    ages: dict[str, list[float]] = defaultdict(list)
    if sample <= 0:
        return {}
    topic_owner = {
        names.delivery_topic(s.hub, sid): owner_of_sub[sid]
        for sid, s in cfg.subscriptions.items()
        if sid in owner_of_sub
    }
    consumer = make_consumer(kafka, "report-freshness", group_id=None, max_poll_records=2000)
    try:
        tps = _existing_partitions(consumer, sorted(topic_owner))
        if not tps:
            return {}
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        per_topic: Counter[str] = Counter(tp.topic for tp in tps)
        consumer.assign(tps)
        for tp in tps:
            share = max(1, sample // per_topic[tp.topic])
            consumer.seek(tp, max(begins[tp], ends[tp] - share))
        deadline = time.monotonic() + timeout
        behind = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        while behind and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for rec in records:
                    if rec.offset >= ends[tp] or rec.timestamp is None or rec.timestamp < 0:
                        continue
                    try:
                        _, event = decoder.decode(rec.value)
                    except HubError:
                        continue
                    commit = source_commit_ms(event)
                    if commit is not None:
                        ages[topic_owner[tp.topic]].append(max(0.0, (rec.timestamp - commit) / 1000))
            behind = {tp for tp in behind if consumer.position(tp) < ends[tp]}
    finally:
        consumer.close()
    return dict(ages)


def format_report(report: SharingReport) -> str:
    """The report as a fixed-width table, one department a line, then the reasons of bad records."""
    header = (
        f"{'DEPARTMENT':<12} {'RES':>4} {'UNCOND':>6} {'COND':>5} {'NOT':>4} {'SHARE':>6} "
        f"{'SERVED':>6} {'HELD':>5} {'DELIVERED':>10} {'P50 S':>7} {'P99 S':>7} "
        f"{'BAD SENT':>8} {'NOT APPLIED':>11}"
    )
    lines = [header]
    for d in report.departments:
        j = d.to_json()
        fresh = j["freshness"]
        lines.append(
            f"{d.department:<12} {d.resources_total:>4} {d.resources['unconditional']:>6} "
            f"{d.resources['conditional']:>5} {d.resources['not_shared']:>4} {_pct(d.share_ratio):>6} "
            f"{d.subscriptions_served:>6} {d.subscriptions_held:>5} {d.records_delivered:>10,} "
            f"{_secs(fresh['p50_seconds']):>7} {_secs(fresh['p99_seconds']):>7} {d.bad_records_sent:>8,} "
            f"{d.records_not_applied:>11,}"
        )
    reasons = [
        f"  {d.department}: " + ", ".join(f"{r} {n:,}" for r, n in sorted(d.bad_records_by_reason.items()))
        for d in report.departments
        if d.bad_records_by_reason
    ]
    if reasons:
        lines += ["", "bad records sent, by reason:", *reasons]
    lines += [
        "",
        "SHARE = unconditionally shared resources / all resources; SERVED = subscriptions to its resources; "
        "HELD = its own subscriptions;",
        "DELIVERED: from the audit; P50/P99 S = seconds from source commit to delivery (latest records);",
        "BAD SENT = its dead-lettered records; NOT APPLIED = deliveries its own sinks could not apply.",
    ]
    return "\n".join(lines)


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
