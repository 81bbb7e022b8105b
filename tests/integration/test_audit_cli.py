"""The disclosure audit on a real broker: verify finds tampering where it is; show answers who got what."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import schemas
from connectors.validation import RecordValidator
from hub.app import HubProcess, start_hub
from hub.audit.cli import open_decoder, show_command, verify_command
from hub.audit.reader import read_records
from hub.audit.show import Criteria
from hub.cli import main as xhub
from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.kafka import ensure_topics, make_admin, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.demo.generator import dishonest_debtor, make_faker, person
from hub.provision.session import provision_session
from tests.fixtures.hubkit import Publisher

DEBTOR_SUBS = ("tax-debtors", "housing-debtors", "transport-debtors", "lujiazui-debtors")


@pytest.fixture
def running(
    demo_config: tuple[Path, dict[str, str]],
) -> Iterator[tuple[ConfigDir, dict[str, str], Path, HubProcess]]:
    root, renames = demo_config
    cfg = load_config(root)
    with provision_session(cfg) as session:
        session.apply()
    process = start_hub(cfg, renames["pudong"])
    assert process.worker.ready.wait(30), "hub worker did not start"
    try:
        yield cfg, renames, root, process
    finally:
        process.close()


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _consumed(process: HubProcess, n: int) -> Callable[[], bool]:
    def check() -> bool:
        with process.worker.stats.lock:
            return process.worker.stats.consumed >= n

    return check


def _debtors(cfg: ConfigDir, n: int, seed: int, district: str | None = None) -> list[dict[str, Any]]:
    fake = make_faker(seed)
    check = RecordValidator(cfg.schemas["PD-CRD-0001"], "case_no", "any")
    return [check.validate(dishonest_debtor(fake, person(fake, district=district))) for _ in range(n)]


def _copy_log(
    kafka: KafkaSettings, serde: Any, source: str, dest: str, edit: Callable[[list[dict[str, Any]]], None]
) -> list[dict[str, Any]]:
    """Write an edited copy of an audit log to ``dest`` (the real one is append-only)."""
    entries = [r.entry for r in read_records(kafka, source, serde)]
    assert all(e is not None for e in entries)
    copy: list[dict[str, Any]] = [dict(e) for e in entries if e is not None]
    edit(copy)
    admin = make_admin(kafka, "test-audit-copy")
    ensure_topics(admin, {dest: {}}, partitions=1)
    admin.close()
    producer = make_producer(kafka, "test-audit-copy")
    schema = schemas.load("hub/audit_record.avsc")
    for entry in copy:
        producer.send(dest, key=entry["chain"].encode(), value=serde.encode(f"{dest}-value", schema, entry))
    producer.flush()
    producer.close()
    return copy


def test_verify_detects_altered_dropped_reordered_and_cut_entries(
    kafka: KafkaSettings,
    running: tuple[ConfigDir, dict[str, str], Path, HubProcess],
    unique_name: Callable[[str], str],
) -> None:
    cfg, renames, root, process = running
    hub = renames["pudong"]
    publisher = Publisher(cfg, process.registry_url, "PD-CRD-0001")
    for record in _debtors(cfg, 30, seed=21):
        publisher.publish(record)
    publisher.flush()
    _wait_for(_consumed(process, 30))
    process.close()  # a quiet log: nothing is appended while the copies are made

    out = io.StringIO()
    assert verify_command(str(root), hub, out=out) == 0, out.getvalue()
    assert "ok: every chain is intact" in out.getvalue()
    assert "anchored up to seq" in out.getvalue()
    # the command line runs the same
    assert xhub(["audit", "verify", str(root), "--hub", hub]) == 0

    with open_decoder(cfg) as serde:
        _tamper_and_verify(kafka, serde, root, hub, unique_name)


def _tamper_and_verify(
    kafka: KafkaSettings, serde: Any, root: Path, hub: str, unique_name: Callable[[str], str]
) -> None:
    audit = names.audit_topic(hub)
    delivered_at = 0

    def alter(copy: list[dict[str, Any]]) -> None:
        nonlocal delivered_at
        delivered_at = next(i for i, e in enumerate(copy) if e["kind"] == "delivered" and i > 10)
        copy[delivered_at]["fields"] = [*copy[delivered_at]["fields"], "debtor_id_plain"]

    altered = unique_name("audit-altered")
    copy = _copy_log(kafka, serde, audit, altered, alter)
    out = io.StringIO()
    assert verify_command(str(root), hub, topic=altered, out=out) == 3
    text = out.getvalue()
    assert (
        f"BROKEN: altered at offset {delivered_at}, chain {copy[delivered_at]['chain']}, "
        f"seq {copy[delivered_at]['seq']}" in text
    ), text

    dropped = unique_name("audit-dropped")
    removed: dict[str, Any] = {}

    def drop(copy: list[dict[str, Any]]) -> None:
        removed.update(copy.pop(15))

    _copy_log(kafka, serde, audit, dropped, drop)
    out = io.StringIO()
    assert verify_command(str(root), hub, topic=dropped, out=out) == 3
    text = out.getvalue()
    assert f"BROKEN: missing at offset 15, chain {removed['chain']}, seq {removed['seq']}" in text, text

    swapped = unique_name("audit-swapped")

    def swap(copy: list[dict[str, Any]]) -> None:
        copy[20], copy[21] = copy[21], copy[20]

    copy = _copy_log(kafka, serde, audit, swapped, swap)
    out = io.StringIO()
    assert verify_command(str(root), hub, topic=swapped, out=out) == 3
    text = out.getvalue()
    assert f"BROKEN: reordered at offset 21, chain {copy[21]['chain']}, seq {copy[21]['seq']}" in text, text
    assert text.count("problem:") == 1, text

    cut = unique_name("audit-cut")

    def truncate(copy: list[dict[str, Any]]) -> None:
        del copy[-3:]

    _copy_log(kafka, serde, audit, cut, truncate)
    out = io.StringIO()
    assert verify_command(str(root), hub, topic=cut, out=out) == 3
    assert "BROKEN: truncated at chain" in out.getvalue(), out.getvalue()
    assert "its tail was cut" in out.getvalue()


def test_show_answers_who_received_a_record_and_what_a_subscriber_received(
    running: tuple[ConfigDir, dict[str, str], Path, HubProcess],
) -> None:
    cfg, renames, root, process = running
    hub = renames["pudong"]
    publisher = Publisher(cfg, process.registry_url, "PD-CRD-0001")
    inside, outside = _debtors(cfg, 1, 31, district="浦东新区")[0], _debtors(cfg, 1, 32, district="黄浦区")[0]
    first = [publisher.publish(r) for r in _debtors(cfg, 10, seed=33)]
    publisher.publish(inside)
    publisher.publish(outside)
    publisher.publish(dict(inside, performance_status="全部未履行"), op="u")
    publisher.flush()
    _wait_for(_consumed(process, 13))
    since = int(time.time() * 1000)
    second = [publisher.publish(r).event_id for r in _debtors(cfg, 10, seed=34)]
    publisher.flush()
    _wait_for(_consumed(process, 23))
    until = int(time.time() * 1000)
    third = [publisher.publish(r) for r in _debtors(cfg, 10, seed=35)]
    publisher.flush()
    _wait_for(_consumed(process, 33))
    plans = process.worker.policies.plans

    # Who received record K of resource R, and which fields?
    out = io.StringIO()
    assert (
        show_command(
            str(root),
            hub,
            Criteria(resource="PD-CRD-0001", key=inside["case_no"], kinds=["delivered"]),
            json_out=True,
            out=out,
        )
        == 0
    )
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    got = sorted((r["subscription"], r["op"], tuple(r["fields"])) for r in rows)
    assert got == sorted((s, op, tuple(plans[s].fields)) for s in DEBTOR_SUBS for op in ("c", "u"))
    assert {r["subscriber"] for r in rows} == {
        renames[d] for d in ("tax", "housing", "transport", "lujiazui")
    }
    assert all(r["delivered_topic"] == names.delivery_topic(hub, r["subscription"]) for r in rows)

    out = io.StringIO()
    show_command(
        str(root), hub, Criteria(resource="PD-CRD-0001", key=outside["case_no"]), json_out=True, out=out
    )
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(r["subscription"] for r in rows) == sorted(
        s for s in DEBTOR_SUBS if s != "lujiazui-debtors"
    )

    # What did subscriber S receive between T1 and T2?
    out = io.StringIO()
    show_command(
        str(root),
        hub,
        Criteria(subscriber=renames["tax"], since=since, until=until, kinds=["delivered"]),
        json_out=True,
        out=out,
    )
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(r["event_id"] for r in rows) == sorted(second)
    assert {r["subscription"] for r in rows} == {"tax-debtors"}
    assert not {r["event_id"] for r in rows} & {e.event_id for e in first + third}

    # the readable form ends with a summary per subscriber
    out = io.StringIO()
    show_command(
        str(root),
        hub,
        Criteria(subscriber=renames["tax"], since=since, until=until, kinds=["delivered"]),
        out=out,
    )
    text = out.getvalue()
    assert (
        f"{renames['tax']} (tax-debtors): 10 delivered; fields {','.join(plans['tax-debtors'].fields)}"
        in text
    )
    assert "10 entries:" in text
