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
                       the deliveries its own sinks could not apply;
    share requests     received as owner: answered on time / late, refused (reasons, legal basis), pending,
                       overdue, median answer time in working days (``hub.governance.assessment``);
    rank               by a score averaging what applies of: share ratio, requests answered on time,
                       records without a dead letter (``score``).

The HTML page (``hub.monitor.report_html``) draws the same report.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from hub.audit.reader import read_entries
from hub.catalog.model import ShareAttribute
from hub.core import names
from hub.core.errors import HubError, RetriableError
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.governance.assessment import RequestFigures, request_figures, requests_by_month
from hub.governance.requests import share_requests
from hub.monitor.dead_letters import DeadLetterTally
from hub.monitor.errors import LagUnavailable
from hub.monitor.lag import Decoder, source_commit_ms
from hub.monitor.snapshot import percentile

if TYPE_CHECKING:
    from datetime import date, datetime

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
    requests: RequestFigures = field(default_factory=RequestFigures)  # as the owner answering them
    score: float | None = None  # 0..1, see score_of; None: nothing to assess
    rank: int | None = None

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
            "requests": self.requests.to_json(),
            "score": _round(self.score),
            "rank": self.rank,
        }

    @property
    def clean_ratio(self) -> float | None:
        """Records delivered / (delivered + its dead letters): the share of its records that were usable."""
        total = self.records_delivered + self.bad_records_sent
        return self.records_delivered / total if total else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass
class SharingReport:
    generated_ms: int
    hubs: list[str]
    departments: list[DepartmentReport]
    audit_entries: int = 0
    undecodable_audit_entries: int = 0
    today: str = ""  # the day share requests were judged (hub timezone)
    answer_within_working_days: int = 10
    requests_by_month: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_ms": self.generated_ms,
            "hubs": self.hubs,
            "audit_entries_read": self.audit_entries,
            "undecodable_audit_entries": self.undecodable_audit_entries,
            "requests_judged_on": self.today,
            "answer_within_working_days": self.answer_within_working_days,
            "requests_by_month": self.requests_by_month,
            "warnings": self.warnings,
            "departments": [d.to_json() for d in self.departments],
        }


def score_of(d: DepartmentReport) -> float | None:
    """The mean of what applies to ``d``: share ratio (owns resources), requests answered on time (some
    came due), records delivered without a dead letter (it sent any). None when none applies."""
    parts = [x for x in (d.shareable_ratio, d.requests.on_time_ratio, d.clean_ratio) if x is not None]
    return sum(parts) / len(parts) if parts else None


def rank_departments(departments: list[DepartmentReport]) -> None:
    """Set ``score`` and ``rank`` (1 = best; equal scores share a rank; no score: no rank)."""
    for d in departments:
        d.score = score_of(d)
    scored = sorted(
        (d for d in departments if d.score is not None), key=lambda d: (-(d.score or 0), d.department)
    )
    rank, previous = 0, None
    for i, d in enumerate(scored, start=1):
        if d.score != previous:
            rank, previous = i, d.score
        d.rank = rank


def add_request_figures(
    report: SharingReport,
    cfg: ConfigDir,
    *,
    today: date | None = None,
    filed: Mapping[str, datetime] | None = None,
) -> None:
    """The share-request figures of every owner (config + the dates apply stamped), and the ranking."""
    listing = share_requests(cfg, today, filed=filed)
    figures = request_figures(cfg, listing)
    known = {d.department: d for d in report.departments}
    for owner, f in figures.items():
        if owner not in known:
            known[owner] = DepartmentReport(owner, owner)
            report.departments.append(known[owner])
        known[owner].requests = f
    report.departments.sort(key=lambda d: d.department)
    report.today = listing.today.isoformat()
    report.answer_within_working_days = listing.working_days
    report.requests_by_month = requests_by_month(listing)
    report.warnings = list(listing.warnings)
    rank_departments(report.departments)


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
    cfg: ConfigDir,
    decoder: Decoder,
    *,
    sample: int = 1000,
    timeout: float = 60.0,
    filed: Mapping[str, datetime] | None = None,
    today: date | None = None,
) -> SharingReport:
    """Read the audit, delivery and dead-letter topics and build the report.

    Args:
        cfg: the config directory (catalog, subscriptions, hubs, Kafka settings).
        decoder: reads audit entries and delivery envelopes (``AvroSerde``).
        sample: records read from the end of each delivery topic for freshness.
        timeout: seconds allowed for reading each family of topics.
        filed: the dates `xhub apply` stamped on share requests (``hub.governance.applied``).
        today: judge pending share requests as of this day (default: today in the hub's timezone).

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
    add_request_figures(report, cfg, today=today, filed=filed)
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
    """Delivered records per providing department from the audit topics: (counts, entries, undecodable).

    Entries are read through ``hub.audit.reader`` (the audit package owns its record layout).
    """
    counts: Counter[str] = Counter()
    read = bad = 0
    probe = make_consumer(kafka, "report-audit", group_id=None)
    try:
        known = probe.topics()
    finally:
        probe.close()
    deadline = time.monotonic() + timeout
    for hub in sorted(cfg.hubs):
        topic = names.audit_topic(hub)
        if topic not in known:
            continue
        for _, entry, _raw in read_entries(kafka, topic, decoder):
            read += 1
            if entry is None:
                bad += 1
                continue
            if entry.get("kind") == "delivered":
                owner = owner_of_sub.get(str(entry.get("subscription"))) or _owner_of_resource(
                    cfg, str(entry.get("resource"))
                )
                counts[owner] += 1
            if time.monotonic() > deadline:
                log.warning("report_audit_incomplete", topic=topic, seconds=timeout)
                break
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
                    except RetriableError:
                        raise  # the registry did not answer: no age can be told, say so
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
    lines += _request_lines(report)
    lines += [
        "",
        "SHARE = unconditionally shared resources / all resources; SERVED = subscriptions to its resources; "
        "HELD = its own subscriptions;",
        "DELIVERED: from the audit; P50/P99 S = seconds from source commit to delivery (latest records);",
        "BAD SENT = its dead-lettered records; NOT APPLIED = deliveries its own sinks could not apply.",
    ]
    return "\n".join(lines)


def _request_lines(report: SharingReport) -> list[str]:
    """Share requests answered per owner, then the ranking."""
    lines = []
    for d in report.departments:
        r = d.requests
        if r.received:
            median = "-" if r.median_answer_days is None else f"{r.median_answer_days:g}"
            lines.append(
                f"  {d.department}: received {r.received}, answered on time {r.on_time}, late {r.late}, "
                f"refused {r.refused}, pending {r.pending} ({r.overdue} overdue); median answer {median} "
                "working days"
            )
            lines += [
                f"    refused {x.subscription}: {x.reason} (legal basis: {x.legal_basis})" for x in r.refusals
            ]
    if lines:
        lines = [
            "",
            f"share requests, as owner (answer due within {report.answer_within_working_days} working days; "
            f"judged {report.today}):",
            *lines,
        ]
    ranked = sorted(
        (d for d in report.departments if d.rank is not None), key=lambda d: (d.rank or 0, d.department)
    )
    if ranked:
        lines += [
            "",
            "ranking (score: mean of share ratio, answered on time, records without a dead letter):",
        ]
        lines += [f"  {d.rank}. {d.department} {(d.score or 0) * 100:.1f}" for d in ranked]
    return lines


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
