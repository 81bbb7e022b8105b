"""The exchange hub on a real broker: policy enforced per subscription, dead letters, counters reconcile."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.validation import RecordValidator
from hub.app import HubProcess, start_hub
from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.demo.generator import dishonest_debtor, make_faker, person
from hub.provision.session import provision_session
from tests.fixtures.hubkit import Publisher, decode_all, read_all, wait_for


@pytest.fixture
def applied(demo_config: tuple[Path, dict[str, str]]) -> tuple[ConfigDir, dict[str, str]]:
    root, renames = demo_config
    cfg = load_config(root)
    with provision_session(cfg) as session:
        session.apply()
        assert session.plan().empty, session.plan().to_text()  # a second look finds nothing to do
    return cfg, renames


@pytest.fixture
def hub(applied: tuple[ConfigDir, dict[str, str]]) -> Iterator[HubProcess]:
    cfg, renames = applied
    process = start_hub(cfg, renames["pudong"])
    assert process.worker.ready.wait(30), "hub worker did not start"
    yield process
    process.close()


def test_policy_is_enforced_per_subscription(
    kafka: KafkaSettings, applied: tuple[ConfigDir, dict[str, str]], hub: HubProcess
) -> None:
    cfg, renames = applied
    hub_name = renames["pudong"]
    fake = make_faker(7)
    debtors = Publisher(cfg, hub.registry_url, "PD-CRD-0001")
    persons = Publisher(cfg, hub.registry_url, "PD-POP-0001")
    check_debtor = RecordValidator(cfg.schemas["PD-CRD-0001"], "case_no", "any")
    check_person = RecordValidator(cfg.schemas["PD-POP-0001"], "id_number", "citizen_id")

    sent = []
    for i in range(40):
        record = dishonest_debtor(fake, person(fake, district="浦东新区" if i % 2 == 0 else "黄浦区"))
        sent.append(debtors.publish(check_debtor.validate(record)))
    updated = dict(sent[0].data or {}, performance_status="部分未履行")
    debtors.publish(updated, op="u")
    debtors.publish(None, op="d", key=sent[1].key)
    debtors.raw(b"\x00\x00\x00\x7f\xffnot avro")  # unknown schema id
    debtors.raw(b"plain text, no wire format")
    for _ in range(5):
        persons.publish(check_person.validate(person(fake)))
    debtors.flush()
    persons.flush()
    debtor_events = 40 + 2 + 2
    person_events = 5

    stats = hub.worker.stats

    def settled() -> bool:
        with stats.lock:
            return stats.consumed >= debtor_events + person_events

    wait_for(settled)
    serde = AvroSerde(RegistryClient(hub.registry_url))

    # tax: every debtor event but the undecodable ones, debtor_id pseudonymised, exactly the plan's fields
    tax_records = read_all(kafka, names.delivery_topic(hub_name, "tax-debtors"), expect=42)
    tax = decode_all(serde, tax_records)
    assert len(tax) == 42
    assert Counter(e["op"] for e in tax) == {"c": 40, "u": 1, "d": 1}
    plan = hub.worker.policies.plans["tax-debtors"]
    for event in tax:
        if event["data"] is not None:
            assert set(event["data"]) == set(plan.fields)
            assert event["data"]["debtor_id"] not in {s.data["debtor_id"] for s in sent if s.data}
    headers = dict(tax_records[0].headers)
    assert headers["xhub.policy_version"] == plan.version.encode()
    assert headers["xhub.subscription"] == b"tax-debtors"
    assert headers["xhub.source"].startswith(names.source_topic(renames["court"], "PD-CRD-0001").encode())
    assert {bytes(h) for h in [headers["xhub.event_id"]]} <= {s.event_id.encode() for s in sent} | {
        e["event_id"].encode() if isinstance(e["event_id"], str) else str(e["event_id"]).encode() for e in tax
    }

    # transport drops the name entirely
    transport = decode_all(
        serde, read_all(kafka, names.delivery_topic(hub_name, "transport-debtors"), expect=42)
    )
    assert all("debtor_name" not in (e["data"] or {}) for e in transport)

    # the sub-district office only sees its district: the delete of a 黄浦区 debtor it never held does
    # not reach it (its key would be a disclosure outside the filter)
    lujiazui = decode_all(
        serde, read_all(kafka, names.delivery_topic(hub_name, "lujiazui-debtors"), expect=21)
    )
    assert {e["data"]["district"] for e in lujiazui if e["data"]} == {"浦东新区"}
    assert sum(1 for e in lujiazui if e["op"] == "c") == 20
    assert not [e for e in lujiazui if e["op"] == "d"]

    # conditional: approved subscriber receives, pending one receives nothing and is refused
    housing = decode_all(serde, read_all(kafka, names.delivery_topic(hub_name, "housing-persons"), expect=5))
    assert len(housing) == 5
    assert all(len(e["data"]["birth_date"]) == 4 for e in housing)
    assert read_all(kafka, names.delivery_topic(hub_name, "transport-persons"), idle=1.0) == []

    # dead letters carry the original bytes and the reason
    dlq = decode_all(serde, read_all(kafka, names.dead_letter_topic(hub_name), expect=2))
    assert sorted(d["reason"] for d in dlq) == ["bad_wire_format", "unknown_schema_id"]
    assert {d["original"] for d in dlq} == {b"\x00\x00\x00\x7f\xffnot avro", b"plain text, no wire format"}

    # counters reconcile: per subscription, every consumed record has exactly one outcome
    with stats.lock:
        subs = dict(stats.subscriptions)
    for sid in ("tax-debtors", "housing-debtors", "transport-debtors", "lujiazui-debtors"):
        assert subs[sid].total() == debtor_events, (sid, subs[sid])
    assert subs["lujiazui-debtors"].filtered == 21  # 20 records of 黄浦区 and the delete of one of them
    assert subs["transport-persons"].refused == person_events
    assert subs["housing-persons"].delivered == person_events

    # the audit has one entry per delivery and per refusal (one record per batch holds them)
    batches = decode_all(serde, read_all(kafka, names.audit_topic(hub_name), idle=2.0))
    audit = [entry for batch in batches for entry in batch["entries"]]
    assert len(batches) < len(audit)
    kinds = Counter((a["kind"], a["subscription"]) for a in audit)
    assert kinds[("delivered", "tax-debtors")] == 42
    assert kinds[("refused", "transport-persons")] == person_events
