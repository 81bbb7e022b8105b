"""The pure parts of "nothing a record carries can stop the hub": reading records as the catalog has
them, giving up on deliveries Kafka refuses for good, backing off, refusing a bad applied config, no cap
on the subscriptions of a resource, and the alerts an operator sees.

The same behaviours on a real broker are in tests/integration/test_hub_resilience.py.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, NotLeaderForPartitionError

from hub.config import load_config
from hub.config.signing import apply_signing_key, signed_snapshot_record
from hub.config.snapshot import config_snapshot
from hub.core.envelope import ChangeEvent, change_event_schema
from hub.core.errors import InvalidRecord
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.engine.audit_log import AuditLog
from hub.engine.delivery_failures import PRODUCE_ATTEMPTS, DeliveryFailures
from hub.engine.handover import Backfilling, encode_metadata
from hub.engine.live_policy import LivePolicy
from hub.engine.partitions import Partitions
from hub.engine.policy_set import PolicySet, policy_set_of_config
from hub.engine.readers import SourceReaders
from hub.engine.stats import Alert, WorkerStats
from hub.engine.transaction import Backoff
from hub.monitor.alerts import AlertCollector, alert_items
from hub.monitor.snapshot import MonitorState, StatusHeader, copy_stats, status_document

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
SECRET = b"unit-test-secret-0123456789"
AUDIT_KEY = b"unit-test-audit-key-0123456789"
CODE = "PD-CRD-0001"


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return policy_set_of_config(load_config(DEMO), "pudong", secret=SECRET)


def _debtor(debtor_type: str = "person") -> dict[str, Any]:
    return {
        "case_no": "(2026)沪0115执1号",
        "debtor_type": debtor_type,
        "debtor_id": "310115199001011234",
        "debtor_name": "张三",
        "court": "上海市浦东新区人民法院",
        "obligation": None,
        "performance_status": "全部未履行",
        "publish_date": 20000,
        "district": "浦东新区",
    }


def _event(data: dict[str, Any]) -> dict[str, Any]:
    return ChangeEvent(CODE, "c", data["case_no"], 1, "court", "test", 1_700_000_000_000, data).to_avro()


def _writer(policies: PolicySet, edit: Any) -> dict[str, Any]:
    resource = copy.deepcopy(policies.schemas[CODE])
    edit(resource)
    return change_event_schema(CODE, resource)


def _new_symbol(resource: dict[str, Any]) -> None:
    field = next(f for f in resource["fields"] if f["name"] == "debtor_type")
    field["type"]["symbols"].append("government")


def _new_field(resource: dict[str, Any]) -> None:
    resource["fields"].append({"name": "note", "type": ["null", "string"], "default": None})


# -- reading records as the catalog has them -------------------------------------------------------
def test_the_policy_set_carries_the_catalog_schemas_of_its_plans(policies: PolicySet) -> None:
    assert set(policies.schemas) == {p.resource for p in policies.plans.values()}


def test_records_of_an_evolved_writer_are_read_as_the_catalog_has_them(
    policies: PolicySet, memory_registry: Any
) -> None:
    serde = AvroSerde(RegistryClient(memory_registry.url))
    readers = SourceReaders(serde, policies)
    topic = policies.plans["tax-debtors"].source_topic
    subject = f"{topic}-value"
    evolved = _writer(policies, lambda r: (_new_symbol(r), _new_field(r)))

    known = serde.encode(subject, evolved, _event({**_debtor("entity"), "note": "补充"}))
    event = readers.decode(topic, known)
    assert event["data"]["debtor_type"] == "entity"
    assert "note" not in event["data"]  # the catalog does not have it: skipped

    unknown = serde.encode(subject, evolved, _event({**_debtor("government"), "note": None}))
    with pytest.raises(InvalidRecord) as caught:
        readers.decode(topic, unknown)
    assert caught.value.reason == "schema_mismatch"
    assert caught.value.original == unknown
    assert "data.debtor_type" in caught.value.detail


def test_reader_schemas_stay_the_same_objects_while_the_catalog_does(policies: PolicySet) -> None:
    readers = SourceReaders(cast(Any, None), policies)
    topic = policies.plans["tax-debtors"].source_topic
    first = readers.reader_schema(topic)
    assert first is not None
    readers.update(replace(policies, schemas=copy.deepcopy(policies.schemas)))
    assert readers.reader_schema(topic) is first  # the serde's resolution cache keys on it
    changed = replace(policies, schemas=copy.deepcopy(policies.schemas))
    _new_field(changed.schemas[CODE])
    readers.update(changed)
    assert readers.reader_schema(topic) is not first
    assert readers.reader_schema("xhub.src.nobody.none") is None  # no plan: read as written


# -- deliveries Kafka refuses for good -----------------------------------------------------------
def test_a_delivery_refused_for_good_is_given_up_after_three_attempts() -> None:
    failures = DeliveryFailures()
    for attempt in range(1, PRODUCE_ATTEMPTS + 1):
        assert failures.given_up("t-0@5", "tax") is None
        failures.failed("t-0@5", "tax", MessageSizeTooLargeError("too large"))
        assert len(failures) == 1, attempt
    detail = failures.given_up("t-0@5", "tax")
    assert detail is not None
    assert "3 times" in detail
    assert "MessageSizeTooLargeError" in detail
    assert failures.given_up("t-0@5", "housing") is None  # the same record, another subscription


def test_an_unavailable_broker_is_not_the_records_fault() -> None:
    failures = DeliveryFailures()
    for _ in range(10):
        failures.failed("t-0@5", "tax", KafkaTimeoutError("no answer"))
        failures.failed("t-0@5", "tax", NotLeaderForPartitionError())
    assert failures.given_up("t-0@5", "tax") is None
    assert len(failures) == 0


def test_a_delivery_that_went_through_is_forgotten() -> None:
    failures = DeliveryFailures()
    failures.failed("t-0@5", "tax", MessageSizeTooLargeError("too large"))
    failures.delivered("t-0@5", "tax")
    assert len(failures) == 0


# -- backing off ---------------------------------------------------------------------------------
def test_the_backoff_doubles_from_1_to_15_seconds_and_resets() -> None:
    backoff = Backoff()
    assert [backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    backoff.reset()
    assert backoff.next() == 1.0


# -- a bad applied config ------------------------------------------------------------------------
@pytest.fixture
def live(policies: PolicySet) -> LivePolicy:
    audit = AuditLog("pudong", "xhub-hub-pudong-0", cast(Any, None), SECRET, audit_key=AUDIT_KEY)
    return LivePolicy(KafkaSettings(bootstrap_servers="127.0.0.1:1"), policies, audit, SECRET, WorkerStats())


def _record(body: dict[str, Any], applied_ts_ms: int = 1) -> bytes:
    """A config record signed by the apply role (the session's key pair, see tests/fixtures/plugin.py)."""
    snapshot = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return signed_snapshot_record(snapshot, applied_ts_ms, apply_signing_key())


def test_an_applied_config_that_does_not_validate_is_refused_with_an_alert(live: LivePolicy) -> None:
    body = json.loads(config_snapshot(load_config(DEMO), "pudong"))
    body["subscriptions"]["tax-debtors"]["fields"].append("no_such_field")
    assert live.compile_snapshot(_record(body)) is None
    assert live.compile_snapshot(b"\xff not json") is None
    assert live.compile_snapshot(_record({**body, "hub": "city"})) is None
    stats = live.stats
    assert stats.config_refused == 3
    [alert] = stats.alerts.values()  # the newest refusal replaces the older ones
    assert alert.kind == "config_refused"
    assert "for hub 'city'" in alert.message
    assert live.policies.digest in alert.message  # what the hub keeps serving

    before = stats.config_refused
    bad = _record(body)
    assert live.compile_snapshot(bad) is None  # a digest refused once is not compiled again
    assert stats.config_refused == before


def test_a_good_config_after_a_refused_one_clears_the_alert(live: LivePolicy) -> None:
    assert live.compile_snapshot(b"{}") is None
    assert live.stats.alerts
    body = json.loads(config_snapshot(load_config(DEMO), "pudong"))
    body["subscriptions"]["tax-debtors"]["fields"].remove("court")
    new = live.compile_snapshot(_record(body))
    assert new is not None
    live.install(new)
    assert not live.stats.alerts
    assert live.stats.config_refused == 1  # the counter stays


def test_applying_the_config_in_force_again_clears_the_alert(live: LivePolicy) -> None:
    assert live.compile_snapshot(b"[]") is None
    assert live.stats.alerts
    same = _record(json.loads(config_snapshot(load_config(DEMO), "pudong")), 2)
    assert live.compile_snapshot(same) is None  # nothing to install
    assert not live.stats.alerts


# -- no cap on subscriptions -----------------------------------------------------------------------
def test_every_subscription_of_a_crowded_resource_gets_its_state() -> None:
    topic = "xhub.src.court.pd-crd-0001"
    plans = [
        SimpleNamespace(subscription=f"subscription-with-a-long-name-{i:04d}", refusal_at=lambda _now: None)
        for i in range(2000)
    ]
    policy = SimpleNamespace(by_topic={topic: plans}, backfill_wanted=lambda _sid: True)
    parts = Partitions(
        "pudong",
        cast(Any, SimpleNamespace(policies=policy)),
        "state",
        lambda _: None,
        cast(Any, None),
        cast(Any, None),
    )
    state = parts.reconciled(TopicPartition(topic, 0), {}, 0, lambda: 1_000)
    assert len(state) == 2000
    assert set(state.values()) == {Backfilling(1_000, 0)}
    # the committed offsets carry the audit anchor only, whatever the number of subscriptions
    anchor = ["xhub-hub-" + "h" * 60 + "-0", 10**12, "f" * 64]
    assert len(encode_metadata(anchor)) < 200


# -- what the operator sees ----------------------------------------------------------------------
def test_alerts_reach_the_status_document_and_the_metrics() -> None:
    stats = WorkerStats()
    stats.alert(Alert("config_refused", "abc", "applied config abc refused", 1000))
    stats.alert(Alert("config_refused", "abc", "applied config abc refused", 2000))
    stats.alert(Alert("config_refused", "def", "applied config def refused", 3000))
    stats.config_refused = 2
    assert [a["since_ms"] for a in alert_items(stats.alerts.values())] == [1000, 3000]  # first seen kept

    doc = status_document(
        StatusHeader("pudong", "", True, 5000, 60.0),
        copy_stats(stats),
        MonitorState(),
        {},
    )
    assert [(a["kind"], a["subject"]) for a in doc["alerts"]] == [
        ("config_refused", "abc"),
        ("config_refused", "def"),
    ]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in AlertCollector("pudong", stats).collect()
        for s in family.samples
    }
    assert samples[("xhub_config_refused_total", (("hub", "pudong"),))] == 2.0
    assert samples[("xhub_alerts", (("hub", "pudong"), ("kind", "config_refused")))] == 2.0

    stats.clear_alerts("config_refused", keep=frozenset({"def"}))
    assert [s for _, s in stats.alerts] == ["def"]
    stats.clear_alerts("config_refused")
    assert not stats.alerts


def test_the_main_loop_starts_all_of_200_subscriptions(policies: PolicySet, tmp_path: Path) -> None:
    """200 subscriptions of one resource: every one starts (with its backfill); none is refused."""
    from hub.engine.emitter import Batch
    from hub.engine.policy_set import build_policy_set
    from hub.engine.worker import HubWorker, WorkerOptions

    cfg = load_config(DEMO)
    tax = cfg.subscriptions["tax-debtors"]
    subs = [tax.model_copy(update={"id": f"tax-debtors-copy-number-{i:04d}"}) for i in range(200)]
    crowded = build_policy_set("pudong", cfg, secret=SECRET, subscriptions=subs)
    worker = HubWorker(
        KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        crowded,
        cast(Any, None),
        SECRET,
        WorkerOptions(hub="pudong", follow_config=False, state_dir=str(tmp_path), audit_key=AUDIT_KEY),
    )
    tp = TopicPartition(crowded.plans[subs[0].id].source_topic, 0)
    worker.partitions.states[tp] = {}
    worker.partitions.log_start[tp] = 0
    batch = Batch()
    serve, _ = worker._served(tp, 100, 1_000, batch)
    assert serve == []  # each is backfilled first: not served by the main loop yet
    assert len(batch.states[tp]) == 200
    assert {sid for sid, _, _ in batch.started} == {s.id for s in subs}
    assert not worker.stats.alerts


# -- the emitter: a record's failure is that record's dead letter --------------------------------
class _Sent:
    """What the emitter handed the producer (the decision under test; the real broker is in
    tests/integration/test_hub_resilience.py)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, bytes]]] = []

    def send(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        self.records.append((topic, dict(headers)))
        return SimpleNamespace(get=lambda timeout: SimpleNamespace(topic=topic, partition=0, offset=0))

    def flush(self) -> None:
        return None


def test_a_routing_or_encoding_failure_is_a_dead_letter_not_an_exception(
    policies: PolicySet, memory_registry: Any
) -> None:
    from hub.engine.emitter import Batch, Emitter
    from hub.engine.records import SourceRecord

    serde = AvroSerde(RegistryClient(memory_registry.url))
    emitter = Emitter(
        "pudong",
        serde,
        AuditLog("pudong", "c", serde, SECRET, audit_key=AUDIT_KEY),
        SourceReaders(serde, policies),
    )
    topic = policies.plans["tax-debtors"].source_topic
    value = serde.encode(
        f"{topic}-value", change_event_schema(CODE, policies.schemas[CODE]), _event(_debtor())
    )
    record = SourceRecord(topic, 0, 7, value)
    plans = policies.by_topic[topic]

    def boom(_data: Any) -> dict[str, Any]:
        raise RuntimeError("a bug one record triggers")

    broken = [replace(p, _project=boom) if p.subscription == "tax-debtors" else p for p in plans]
    sent, batch = _Sent(), Batch()
    emitter.emit(cast(Any, sent), record, emitter.decode(record), broken, 1_000, batch)
    [(dlq, headers)] = sent.records
    assert dlq == "xhub.dlq.pudong"
    assert headers["xhub.reason"] == b"unprocessable"
    assert {sid for (sid, outcome) in batch.counts if outcome == "dead_lettered"} == {
        p.subscription for p in plans
    }

    tax = policies.plans["tax-debtors"]
    narrow = copy.deepcopy(tax.delivery_schema)
    next(f for f in narrow["fields"] if f["name"] == "seq")["type"] = "string"  # the value does not fit
    unfit = [replace(p, delivery_schema=narrow) if p.subscription == "tax-debtors" else p for p in plans]
    sent, batch = _Sent(), Batch()
    emitter.emit(cast(Any, sent), record, emitter.decode(record), unfit, 1_000, batch)
    letters = [h for t, h in sent.records if t == "xhub.dlq.pudong"]
    assert [(h["xhub.reason"], h["xhub.origin"]) for h in letters] == [
        (b"unencodable", f"{topic}-0@7".encode())
    ]
    assert batch.counts[("tax-debtors", "dead_lettered")] == 1
    assert batch.counts[("housing-debtors", "delivered")] == 1  # the others are delivered
