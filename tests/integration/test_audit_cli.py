"""The disclosure audit on a real broker: verify finds tampering where it is; show answers who got what."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import schemas
from connectors.validation import RecordValidator
from hub.app import HubProcess, start_hub
from hub.audit.chain import AuditChain
from hub.audit.cli import checkpoint_command, open_decoder, show_command, verify_command
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
from tests.fixtures.hubkit import Publisher, wait_for

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
    schema = schemas.load("hub/audit_batch.avsc")
    for entry in copy:  # a batch of one entry per record: offsets in the copy are entry indices
        batch = {"chain": entry["chain"], "first_seq": entry["seq"], "entries": [entry]}
        producer.send(dest, key=entry["chain"].encode(), value=serde.encode(f"{dest}-value", schema, batch))
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
    wait_for(_consumed(process, 30))
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


def _sha256_rechain(entries: list[dict[str, Any]], chain: str) -> None:
    """What a writer of the audit topic without the audit key can do: the public algorithm, plain SHA-256
    (the chain of every release before the keyed one)."""
    seq, prev = 0, "0" * 64
    for entry in entries:
        if entry["chain"] != chain:
            continue
        seq += 1
        entry["seq"], entry["prev_hash"] = seq, prev
        body = {k: v for k, v in entry.items() if k != "hash"}
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        entry["hash"] = prev = hashlib.sha256((prev + text).encode()).hexdigest()


def test_rebuilt_cut_and_invented_chains_are_detected_against_the_key_and_the_checkpoints(
    kafka: KafkaSettings,
    running: tuple[ConfigDir, dict[str, str], Path, HubProcess],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    cfg, renames, root, process = running
    hub = renames["pudong"]
    publisher = Publisher(cfg, process.registry_url, "PD-CRD-0001")
    for record in _debtors(cfg, 30, seed=41):
        publisher.publish(record)
    publisher.flush()
    wait_for(_consumed(process, 30))
    process.close()
    audit = names.audit_topic(hub)
    checkpoints = tmp_path / "auditor" / "checkpoints"
    key = os.environ["XHUB_PUDONG_AUDIT_KEY"]

    out = io.StringIO()
    assert checkpoint_command(str(root), hub, checkpoints, out=out) == 0, out.getvalue()
    written = checkpoints / f"{hub}-00000001.json"
    assert written.is_file(), out.getvalue()
    assert key not in written.read_text(encoding="utf-8")
    assert key not in out.getvalue()
    assert xhub(["audit", "verify", str(root), "--hub", hub, "--checkpoints", str(checkpoints)]) == 0

    def verify(topic: str) -> str:
        out = io.StringIO()
        code = verify_command(str(root), hub, topic=topic, checkpoints=checkpoints, out=out)
        assert code == 3, out.getvalue()
        return out.getvalue()

    with open_decoder(cfg) as serde:
        # a chain rebuilt without one disclosure by someone without the key: every entry from there fails
        def rebuild(copy: list[dict[str, Any]]) -> None:
            victim = next(i for i, e in enumerate(copy) if e["kind"] == "delivered" and i > 10)
            _sha256_rechain(copy, copy.pop(victim)["chain"])

        text = verify(_copy_log_to(kafka, serde, audit, unique_name("audit-rebuilt"), rebuild))
        assert "BROKEN: altered at offset" in text
        assert "does not match the entry's keyed hash" in text

        # rebuilt by a holder of the key: it verifies as a chain, but not against the checkpoint
        def rebuild_with_key(copy: list[dict[str, Any]]) -> None:
            victim = next(i for i, e in enumerate(copy) if e["kind"] == "delivered" and i > 10)
            chain = AuditChain(copy.pop(victim)["chain"], key.encode())
            for i, entry in enumerate(copy):
                if entry["chain"] == chain.chain:
                    copy[i] = chain.append({k: v for k, v in entry.items() if k not in CHAIN_FIELDS})

        text = verify(_copy_log_to(kafka, serde, audit, unique_name("audit-rekeyed"), rebuild_with_key))
        assert "content does not match" not in text  # a valid keyed chain ...
        assert f"checkpoint {hub}-00000001.json records seq" in text  # ... shorter than the checkpoint says

        # the tail cut after the checkpoint
        def cut(copy: list[dict[str, Any]]) -> None:
            del copy[-3:]

        text = verify(_copy_log_to(kafka, serde, audit, unique_name("audit-cut"), cut))
        assert f"truncated at chain {names.hub_transactional_id(hub, 0)}" in text
        assert f"checkpoint {hub}-00000001.json records seq" in text

        # an invented chain under a worker's name, without the key
        def invent(copy: list[dict[str, Any]]) -> None:
            name = names.hub_transactional_id(hub, 7)
            fake = [dict(e, chain=name) for e in copy if e["kind"] == "delivered"][:5]
            _sha256_rechain(fake, name)
            copy.extend(fake)

        text = verify(_copy_log_to(kafka, serde, audit, unique_name("audit-invented"), invent))
        assert f"chain {names.hub_transactional_id(hub, 7)}, seq 1: content does not match" in text

        # a chain no worker of this hub writes, even with the key
        def foreign(copy: list[dict[str, Any]]) -> None:
            chain = AuditChain("xhub-hub-elsewhere-0", key.encode())
            copy.append(chain.append({k: v for k, v in copy[0].items() if k not in CHAIN_FIELDS}))

        text = verify(_copy_log_to(kafka, serde, audit, unique_name("audit-foreign"), foreign))
        assert "unknown_chain at offset" in text
        assert "no worker of this hub writes a chain so named" in text


CHAIN_FIELDS = {"chain", "seq", "prev_hash", "hash"}


def _copy_log_to(
    kafka: KafkaSettings, serde: Any, source: str, dest: str, edit: Callable[[list[dict[str, Any]]], None]
) -> str:
    _copy_log(kafka, serde, source, dest, edit)
    return dest


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
    wait_for(_consumed(process, 13))
    since = int(time.time() * 1000)
    second = [publisher.publish(r).event_id for r in _debtors(cfg, 10, seed=34)]
    publisher.flush()
    wait_for(_consumed(process, 23))
    until = int(time.time() * 1000)
    third = [publisher.publish(r) for r in _debtors(cfg, 10, seed=35)]
    publisher.flush()
    wait_for(_consumed(process, 33))
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
