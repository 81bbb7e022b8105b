"""Live policy changes on a real broker, without restarting the hub: revocation and removal during a
stream, fields and masks changed, a validity window ending on its own. Grants changed live (a grant
given later, clear withdrawn, approved -> refused) are in test_live_grants.py."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.app import HubProcess, start_hub
from hub.audit.cli import verify_command
from hub.audit.reader import read_records
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from tests.fixtures.hubkit import apply_config, read_all, wait_for
from tests.integration.test_backfill import Stream, check_each_once, deliveries, source_events

CODE = "PD-CRD-0001"


@pytest.fixture
def running(
    demo_config: tuple[Path, dict[str, str]],
) -> Iterator[tuple[ConfigDir, dict[str, str], Path, HubProcess]]:
    root, renames = demo_config
    cfg = apply_config(root)
    process = start_hub(cfg, renames["pudong"])
    assert process.worker.ready.wait(30), "hub worker did not start"
    try:
        yield cfg, renames, root, process
    finally:
        process.close()


def _edit(root: Path, file: str, edit: Callable[[list[dict[str, Any]]], None]) -> None:
    """Edit the subscriptions of every ``subscriptions/<dept>/<file>`` as one list; each stays in its file."""
    paths = sorted((root / "subscriptions").rglob(file))
    docs = {path: yaml.safe_load(path.read_text(encoding="utf-8")) for path in paths}
    home = {id(sub): path for path, doc in docs.items() for sub in doc["subscriptions"]}
    subs = [sub for doc in docs.values() for sub in doc["subscriptions"]]
    edit(subs)
    for path, doc in docs.items():
        doc["subscriptions"] = [sub for sub in subs if home.get(id(sub)) == path]
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _sub(subs: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    return next(s for s in subs if s["id"] == sid)


def _consumed(process: HubProcess, n: int) -> Callable[[], bool]:
    def check() -> bool:
        with process.worker.stats.lock:
            return process.worker.stats.consumed >= n

    return check


def _audit(kafka: KafkaSettings, serde: AvroSerde, hub: str) -> list[dict[str, Any]]:
    out = []
    for rec in read_records(kafka, names.audit_topic(hub), serde):
        assert rec.entry is not None
        out.append(rec.entry)
    return out


def _source_offset(entry: dict[str, Any]) -> tuple[int, int]:
    where, offset = str(entry["source"]).rsplit("@", 1)
    return int(where.rsplit("-", 1)[1]), int(offset)


def test_revoked_and_removed_subscriptions_stop_receiving_within_seconds(
    kafka: KafkaSettings, running: tuple[ConfigDir, dict[str, str], Path, HubProcess]
) -> None:
    cfg, renames, root, process = running
    hub = renames["pudong"]
    stream = Stream(cfg, process.registry_url, seed=51)
    stream.burst(200)
    stream.start()
    try:
        wait_for(_consumed(process, 300), what="a stream under way")

        def revoke(subs: list[dict[str, Any]]) -> None:
            _sub(subs, "transport-debtors")["active"] = False
            subs.remove(_sub(subs, "lujiazui-debtors"))

        _edit(root, "credit.yaml", revoke)
        apply_config(root)
        applied_ms = int(time.time() * 1000)
        plans = process.worker.policies.plans
        wait_for(
            lambda: (
                process.worker.policies.plans.get("transport-debtors", plans["transport-debtors"]).refusal
                == "revoked"
            ),
            timeout=10,
            what="the revocation installed",
        )
        time.sleep(2.0)  # the stream goes on after the revocation
    finally:
        sent = stream.finish()
    wait_for(_consumed(process, sent), what="all consumed")
    serde = AvroSerde(RegistryClient(process.registry_url))
    audit = _audit(kafka, serde, hub)
    new_version = process.worker.policies.plans["transport-debtors"].version

    changed = [a for a in audit if a["kind"] == "policy_changed" and a["subscription"] == "transport-debtors"]
    revoked = changed[-1]
    assert revoked["policy_version"] == new_version
    assert "refused: revoked" in revoked["reason"]
    assert revoked["ts_ms"] - applied_ms < 10_000, "the revocation took effect late"

    mine = [a for a in audit if a["subscription"] == "transport-debtors" and a["kind"] != "policy_changed"]
    delivered = [a for a in mine if a["kind"] == "delivered"]
    refused = [a for a in mine if a["kind"] == "refused"]
    assert delivered
    assert refused
    assert max(a["ts_ms"] for a in delivered) <= revoked["ts_ms"]
    assert {a["reason"] for a in refused} == {"revoked"}
    assert {a["policy_version"] for a in refused} == {new_version}
    # per partition, nothing delivered after the first refusal; every event is one or the other, once
    first_refused: dict[int, int] = defaultdict(lambda: 1 << 62)
    for a in refused:
        p, o = _source_offset(a)
        first_refused[p] = min(first_refused[p], o)
    assert all(_source_offset(a)[1] < first_refused[_source_offset(a)[0]] for a in delivered)
    outcomes = [_source_offset(a) for a in mine]
    assert len(outcomes) == len(set(outcomes)) == sent

    # the delivery topic holds nothing produced after the revocation took effect
    records = read_all(kafka, names.delivery_topic(hub, "transport-debtors"), expect=len(delivered))
    assert len(records) == len(delivered)
    assert max(r.timestamp for r in records) <= revoked["ts_ms"]

    removals = [a for a in audit if a["kind"] == "policy_changed" and a["subscription"] == "lujiazui-debtors"]
    removed = removals[-1]
    assert removed["policy_version"] == "removed"
    assert removed["reason"] == "removed"
    later = [a for a in audit if a["subscription"] == "lujiazui-debtors" and a["ts_ms"] > removed["ts_ms"]]
    assert later == []
    assert verify_command(str(root), hub) == 0


def test_fields_and_masks_change_in_flight(
    kafka: KafkaSettings, running: tuple[ConfigDir, dict[str, str], Path, HubProcess]
) -> None:
    cfg, renames, root, process = running
    hub = renames["pudong"]
    old = process.worker.policies.plans["tax-debtors"]
    stream = Stream(cfg, process.registry_url, seed=52)
    stream.burst(200)
    stream.start()
    try:
        wait_for(_consumed(process, 300), what="a stream under way")

        def change(subs: list[dict[str, Any]]) -> None:
            sub = _sub(subs, "tax-debtors")
            sub["fields"] = [f for f in sub["fields"] if f != "debtor_name"]
            sub["masks"] = {"debtor_id": "id_number"}

        _edit(root, "credit.yaml", change)
        apply_config(root)
        wait_for(
            lambda: process.worker.policies.plans["tax-debtors"].version != old.version,
            timeout=10,
            what="the change installed",
        )
        time.sleep(1.5)
    finally:
        sent = stream.finish()
    wait_for(_consumed(process, sent), what="all consumed")
    new = process.worker.policies.plans["tax-debtors"]
    assert "debtor_name" not in new.fields

    serde = AvroSerde(RegistryClient(process.registry_url))
    source = source_events(kafka, serde, names.source_topic(renames["court"], CODE))
    topic = names.delivery_topic(hub, "tax-debtors")
    got = deliveries(kafka, serde, topic, expect=sent)
    check_each_once(source, got)  # no replay, no re-backfill for a change of fields
    assert not [d for d in got if d.op == "r"]

    versions: dict[str, int] = defaultdict(int)
    for rec in read_all(kafka, topic, expect=sent):
        version = dict(rec.headers)["xhub.policy_version"].decode()
        versions[version] += 1
        data = serde.decode(rec.value)[1]["data"]
        if data is None:
            continue
        if version == new.version:
            assert set(data) == set(new.fields)
            assert "*" in data["debtor_id"]  # the ID-number mask, not a pseudonym
        else:
            assert version == old.version
            assert "debtor_name" in data
    assert versions[old.version] > 0
    assert versions[new.version] > 0

    audit = _audit(kafka, serde, hub)
    changed = [a for a in audit if a["kind"] == "policy_changed" and a["subscription"] == "tax-debtors"][-1]
    assert changed["policy_version"] == new.version
    assert "fields -debtor_name" in changed["reason"]
    assert "mask debtor_id: pseudonym -> id_number" in changed["reason"]
    assert changed["fields"] == new.fields


def test_a_validity_window_ends_on_its_own(
    kafka: KafkaSettings, running: tuple[ConfigDir, dict[str, str], Path, HubProcess]
) -> None:
    cfg, renames, root, process = running
    hub = renames["pudong"]
    # The window must still be open for a few seconds once the hub has installed it. On a loaded machine
    # apply and install can take most of a short window: then try again with a longer one.
    window_s = 8.0
    while True:
        until = datetime.now(UTC) + timedelta(seconds=window_s)
        until_ms = int(until.timestamp() * 1000)

        def expire(subs: list[dict[str, Any]], until: datetime = until) -> None:
            _sub(subs, "transport-debtors")["valid_until"] = until.isoformat()

        _edit(root, "credit.yaml", expire)
        apply_config(root)

        def installed(until_ms: int = until_ms) -> bool:
            return process.worker.policies.plans["transport-debtors"].valid_until_ms == until_ms

        wait_for(installed, timeout=window_s + 10, what="the window installed")
        if time.time() * 1000 < until_ms - 4000 or window_s >= 64:
            break
        window_s *= 2
    stream = Stream(cfg, process.registry_url, seed=53)
    stream.start()
    try:
        wait_for(
            lambda: time.time() * 1000 > until_ms + 2000, timeout=window_s + 20, what="the end of the window"
        )
    finally:
        sent = stream.finish()
    wait_for(_consumed(process, sent), what="all consumed")

    serde = AvroSerde(RegistryClient(process.registry_url))
    audit = _audit(kafka, serde, hub)
    mine = [a for a in audit if a["subscription"] == "transport-debtors"]
    delivered = [a for a in mine if a["kind"] == "delivered"]
    refused = [a for a in mine if a["kind"] == "refused"]
    assert delivered
    assert refused
    assert {a["reason"] for a in refused} == {"expired"}
    # the batch in hand when the window closed may finish; nothing is decided later than that
    assert max(a["ts_ms"] for a in delivered) < until_ms + 1000
    assert min(a["ts_ms"] for a in refused) >= until_ms
    # (an earlier, too short window that closed before the stream began may have its own entry)
    closed = [
        a
        for a in mine
        if a["kind"] == "policy_changed"
        and a["reason"] == "window closed: expired"
        and a["ts_ms"] >= until_ms
    ]
    assert len(closed) == 1
    assert until_ms <= closed[0]["ts_ms"] < until_ms + 2000
    assert closed[0]["fields"] == []
    records = read_all(kafka, names.delivery_topic(hub, "transport-debtors"), expect=len(delivered))
    assert len(records) == len(delivered)
