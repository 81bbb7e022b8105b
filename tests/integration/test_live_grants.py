"""The owners' grants change live on a real broker, without restarting the hub: a grant given later
starts the subscription with the current state; a grant withdrawing `clear` masks the field from the next
batch on; a grant turned from approved to refused stops delivery (grant_refused), all audited."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from connectors.validation import RecordValidator
from hub.app import HubProcess
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.demo.generator import make_faker, person
from tests.fixtures.hubkit import Publisher, apply_config, read_all, wait_for
from tests.integration.test_backfill import Stream, check_handover, deliveries, source_events
from tests.integration.test_live_policy import _audit, _consumed, running

__all__ = ["running"]  # the fixture, imported for pytest

Running = tuple[ConfigDir, dict[str, str], Path, HubProcess]


def _edit_grants(root: Path, owner: str, file: str, edit: Callable[[list[dict[str, Any]]], None]) -> None:
    path = root / "grants" / owner / file
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {"grants": []}
    edit(doc["grants"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_a_grant_given_later_starts_with_the_state_and_a_refusal_stops_it(
    kafka: KafkaSettings, running: Running
) -> None:
    cfg, renames, root, process = running
    hub = renames["pudong"]
    fake = make_faker(61)
    check = RecordValidator(cfg.schemas["PD-POP-0001"], "id_number", "citizen_id")
    persons = Publisher(cfg, process.registry_url, "PD-POP-0001")
    people = [check.validate(person(fake)) for _ in range(30)]
    for record in people:
        persons.publish(record)
    for record in people[:5]:
        persons.publish(dict(record, phone="13800000000"), op="u")
    for record in people[5:8]:
        persons.publish(None, op="d", key=record["id_number"])
    persons.flush()
    wait_for(_consumed(process, 38), what="the persons consumed")

    topic = names.delivery_topic(hub, "transport-persons")
    assert read_all(kafka, topic, idle=1.0) == []  # psb has not answered: nothing
    serde = AvroSerde(RegistryClient(process.registry_url))
    refusals = [a for a in _audit(kafka, serde, hub) if a["subscription"] == "transport-persons"]
    refusals = [a for a in refusals if a["kind"] == "refused"]
    assert len(refusals) == 38
    assert {a["reason"] for a in refusals} == {"no_grant"}

    grant = {
        "subscription": "transport-persons",
        "resource": "PD-POP-0001",
        "decision": "approved",
        "approver": "浦东公安分局人口管理办公室",
        "reference": "浦公共享〔2026〕99号",
        "decided_at": "2026-11-20T15:00:00+08:00",
        "valid_until": "2030-01-01T00:00:00+08:00",
        "fields": ["id_number", "name"],
    }
    _edit_grants(root, renames["psb"], "population.yaml", lambda grants: grants.append(grant))
    apply_config(root)
    worker = process.worker
    wait_for(
        lambda: getattr(worker.backfills.get("transport-persons"), "state", None) == "done",
        what="the granted subscription's backfill",
    )
    later = [check.validate(person(fake)) for _ in range(5)]
    for record in later:
        persons.publish(record)
    persons.flush()
    wait_for(_consumed(process, 43), what="the later persons consumed")

    source = source_events(kafka, serde, names.source_topic(renames["psb"], "PD-POP-0001"))
    got = deliveries(kafka, serde, topic, expect=27 + 5)
    check_handover(source, got)
    assert sum(1 for d in got if d.op == "r") == 27  # 30 persons, 3 deleted
    assert sum(1 for d in got if d.op == "c") == 5
    ids = {p["id_number"] for p in [*people, *later]}
    for rec in read_all(kafka, topic, expect=32):
        data = serde.decode(rec.value)[1]["data"]
        assert set(data) == {"id_number", "name"}  # no phone: not granted
        assert data["id_number"] not in ids  # requested pseudonym; the grant puts nothing in clear
        assert "*" in data["name"]  # the catalog default (name), as the subscriber asked

    audit = [a for a in _audit(kafka, serde, hub) if a["subscription"] == "transport-persons"]
    granted = [a for a in audit if a["kind"] == "policy_changed"][-1]
    assert granted["policy_version"] == worker.policies.plans["transport-persons"].version
    assert "deliverable (was refused: no_grant)" in granted["reason"]
    assert "grant approved ref 浦公共享〔2026〕99号 by 浦东公安分局人口管理办公室" in granted["reason"]
    assert "fields id_number,name" in granted["reason"]
    assert len([a for a in audit if a["kind"] == "delivered"]) == 32

    def refuse(grants: list[dict[str, Any]]) -> None:
        mine = next(g for g in grants if g["subscription"] == "transport-persons")
        mine.update(
            decision="refused",
            reason="联系方式不在共享范围 (contact data is not shared)",
            legal_basis="《中华人民共和国个人信息保护法》 第六条",
        )

    _edit_grants(root, renames["psb"], "population.yaml", refuse)
    apply_config(root)
    wait_for(
        lambda: worker.policies.plans["transport-persons"].refusal == "grant_refused",
        timeout=10,
        what="the refusal installed",
    )
    for record in [check.validate(person(fake)) for _ in range(4)]:
        persons.publish(record)
    persons.flush()
    wait_for(_consumed(process, 47), what="the persons after the refusal consumed")
    assert len(read_all(kafka, topic, idle=1.0)) == 32  # nothing more
    audit = [a for a in _audit(kafka, serde, hub) if a["subscription"] == "transport-persons"]
    assert [a["reason"] for a in audit if a["kind"] == "refused"][-4:] == ["grant_refused"] * 4
    assert "refused: grant_refused" in [a for a in audit if a["kind"] == "policy_changed"][-1]["reason"]


def test_withdrawing_clear_masks_the_field_live(kafka: KafkaSettings, running: Running) -> None:
    cfg, renames, root, process = running
    hub = renames["pudong"]
    old = process.worker.policies.plans["tax-debtors"]
    assert {r.name: r.mask for r in old.rules}["debtor_name"] is None  # in clear by the court's grant
    stream = Stream(cfg, process.registry_url, seed=53)
    stream.burst(200)
    stream.start()
    try:
        wait_for(_consumed(process, 300), what="a stream under way")

        def withdraw(grants: list[dict[str, Any]]) -> None:
            mine = next(g for g in grants if g["subscription"] == "tax-debtors")
            mine.pop("clear")
            mine.pop("legal_basis")

        _edit_grants(root, renames["court"], "credit.yaml", withdraw)
        apply_config(root)
        wait_for(
            lambda: process.worker.policies.plans["tax-debtors"].version != old.version,
            timeout=10,
            what="the withdrawal installed",
        )
        time.sleep(1.5)
    finally:
        sent = stream.finish()
    wait_for(_consumed(process, sent), what="all consumed")
    new = process.worker.policies.plans["tax-debtors"]
    assert {r.name: r.mask.kind if r.mask else None for r in new.rules}["debtor_name"] == "name"

    serde = AvroSerde(RegistryClient(process.registry_url))
    source = source_events(kafka, serde, names.source_topic(renames["court"], "PD-CRD-0001"))
    names_sent = {e["data"]["debtor_name"] for events in source.values() for _, e in events if e["data"]}
    versions = {old.version: 0, new.version: 0}
    for rec in read_all(kafka, names.delivery_topic(hub, "tax-debtors"), expect=sent):
        version = dict(rec.headers)["xhub.policy_version"].decode()
        versions[version] += 1
        data = serde.decode(rec.value)[1]["data"]
        if data is None:
            continue
        if version == new.version:
            assert data["debtor_name"] not in names_sent
            assert "*" in data["debtor_name"]
        else:
            assert data["debtor_name"] in names_sent
    assert versions[old.version] > 0
    assert versions[new.version] > 0
    changed = [a for a in _audit(kafka, serde, hub) if a["kind"] == "policy_changed"]
    changed = [a for a in changed if a["subscription"] == "tax-debtors"][-1]
    assert changed["policy_version"] == new.version
    assert "mask debtor_name: None -> name" in changed["reason"]
