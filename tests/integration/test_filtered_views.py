"""Filtered views stay true, end to end on a real broker into a real SQL sink: a row that an update takes
out of a subscription's filter is deleted downstream (op "d", reason "out of scope", audited), a row an
update brings into it arrives, a delete reaches only the subscriptions that hold the key, and a
subscription revoked and granted again ends with exactly the rows in its scope."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from connectors.runtime.sink_loop import SinkLoop
from connectors.sinks import SqlSink, SqlSinkConfig
from connectors.validation import RecordValidator
from hub.app import HubProcess, start_hub
from hub.audit.cli import verify_command
from hub.audit.reader import batch_entries
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.demo.generator import dishonest_debtor, make_faker, person
from hub.engine.router import OUT_OF_SCOPE
from tests.fixtures.hubkit import Publisher, apply_config, read_all, wait_for
from tests.integration.sinks_support import fetch
from tests.integration.test_backfill import CODE, _add_subscriptions

PUDONG, HUANGPU = "浦东新区", "黄浦区"
UNPAID, PARTLY = "全部未履行", "部分未履行"
VIEWS = {"lujiazui-debtors": "lujiazui", "unpaid-debtors": "unpaid"}  # subscription -> sink table


def in_scope(sid: str, row: dict[str, Any]) -> bool:
    if sid == "lujiazui-debtors":
        return bool(row["district"] == PUDONG)
    return bool(row["performance_status"] == UNPAID)


class Court:
    """The court's register of debtors, published as its sidecar would; ``rows`` is the truth."""

    def __init__(self, cfg: ConfigDir, registry_url: str) -> None:
        self.publisher = Publisher(cfg, registry_url, CODE)
        self.check = RecordValidator(cfg.schemas[CODE], "case_no", "any")
        self.fake = make_faker(83)
        self.rows: dict[str, dict[str, Any]] = {}
        self.sent = 0

    def create(self, district: str, status: str) -> str:
        row = self.check.validate(dict(dishonest_debtor(self.fake, person(self.fake)), district=district))
        row["performance_status"] = status
        self.rows[row["case_no"]] = row
        self.publisher.publish(row, op="c")
        self.sent += 1
        return str(row["case_no"])

    def update(self, case: str, **changes: Any) -> None:
        self.rows[case] = dict(self.rows[case], **changes)
        self.publisher.publish(self.rows[case], op="u")
        self.sent += 1

    def delete(self, case: str) -> None:
        del self.rows[case]
        self.publisher.publish(None, op="d", key=case)
        self.sent += 1

    def flush(self) -> None:
        self.publisher.flush()


class Sidecar:
    """The subscriber's SQL sink (a SinkLoop on a thread) applying both views to SQLite tables."""

    def __init__(self, kafka: KafkaSettings, registry_url: str, hub: str, dsn: str, dept: str) -> None:
        sink = SqlSink(SqlSinkConfig(dsn=SecretStr(dsn), tables=dict(VIEWS)))
        topics = [names.delivery_topic(hub, sid) for sid in VIEWS]
        self.loop = SinkLoop(
            kafka, registry_url, topics, f"test-views-{dept}", sink, dept=dept, poll_timeout_ms=200
        )
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.loop.stop()
        self.thread.join(30)


def cases(dsn: str, table: str) -> set[str]:
    try:
        return {str(r[0]) for r in fetch(dsn, f"SELECT case_no FROM {table}")}
    except Exception:
        return set()


def truth(court: Court, sid: str) -> set[str]:
    return {case for case, row in court.rows.items() if in_scope(sid, row)}


def wait_true(dsn: str, court: Court, what: str) -> None:
    def check() -> bool:
        return all(cases(dsn, table) == truth(court, sid) for sid, table in VIEWS.items())

    try:
        wait_for(check, timeout=45, what=what)
    except AssertionError:
        for sid, table in VIEWS.items():
            got, want = cases(dsn, table), truth(court, sid)
            print(sid, "extra", sorted(got - want), "missing", sorted(want - got))
        raise


def consumed(process: HubProcess, n: int) -> Callable[[], bool]:
    def check() -> bool:
        with process.worker.stats.lock:
            return process.worker.stats.consumed >= n

    return check


def _set_active(root: Path, sid: str, active: bool) -> None:
    """Set ``active`` on subscription ``sid`` in whichever file of subscriptions/ declares it."""
    for path in sorted((root / "subscriptions").rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        subs = [sub for sub in doc.get("subscriptions", []) if sub["id"] == sid]
        for sub in subs:
            sub["active"] = active
        if subs:
            path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
            return
    raise AssertionError(f"subscription {sid} is in no file of {root / 'subscriptions'}")


@pytest.fixture
def views(
    kafka: KafkaSettings, demo_config: tuple[Path, dict[str, str]], kafka_registry: str, tmp_path: Path
) -> Any:
    root, renames = demo_config
    _add_subscriptions(
        root,
        renames,
        [
            {
                "id": "unpaid-debtors",
                "subscriber": renames["lujiazui"],
                "fields": ["case_no", "performance_status", "district"],
                "filter": f'performance_status == "{UNPAID}"',
            }
        ],
    )
    cfg = apply_config(root)
    hub = renames["pudong"]
    process = start_hub(cfg, hub)
    assert process.worker.ready.wait(30)
    dsn = f"sqlite:///{tmp_path}/lujiazui.db"
    sidecar = Sidecar(kafka, process.registry_url, hub, dsn, renames["lujiazui"])
    court = Court(cfg, process.registry_url)
    try:
        yield root, renames, process, court, dsn
    finally:
        sidecar.close()
        process.close()
        court.publisher.close()


def test_updates_moving_rows_across_a_filter_keep_the_views_true(kafka: KafkaSettings, views: Any) -> None:
    root, renames, process, court, dsn = views
    hub = renames["pudong"]
    a = court.create(PUDONG, UNPAID)  # in both views
    b = court.create(PUDONG, PARTLY)  # lujiazui only
    c = court.create(HUANGPU, UNPAID)  # unpaid only
    d = court.create(HUANGPU, PARTLY)  # in neither
    court.flush()
    wait_true(dsn, court, "the first rows")
    assert cases(dsn, "lujiazui") == {a, b}

    court.update(a, district=HUANGPU)  # district change: out of lujiazui's scope
    court.update(c, district=PUDONG)  # district change: into it
    court.flush()
    wait_true(dsn, court, "the district changes")
    assert cases(dsn, "lujiazui") == {b, c}

    court.update(a, performance_status=PARTLY)  # status change: out of unpaid's scope
    court.update(b, performance_status=UNPAID)  # into it
    court.flush()
    wait_true(dsn, court, "the status changes")
    assert cases(dsn, "unpaid") == {b, c}

    serde = AvroSerde(RegistryClient(process.registry_url))
    before = {sid: len(read_all(kafka, names.delivery_topic(hub, sid), idle=1.0)) for sid in VIEWS}
    court.delete(d)  # held by no one: nothing arrives anywhere
    court.delete(a)  # out of both scopes by now: nothing either
    court.delete(c)  # held by both
    court.flush()
    wait_for(consumed(process, court.sent), what="the deletes consumed")
    wait_true(dsn, court, "the deletes")
    for sid in VIEWS:
        records = read_all(kafka, names.delivery_topic(hub, sid), idle=1.0)
        assert len(records) == before[sid] + 1, sid  # only c's delete
        last = serde.decode(records[-1].value)[1]
        assert last["op"] == "d"
        assert "xhub.reason" not in dict(records[-1].headers)  # a delete at the source, not of scope

    # the out-of-scope deletes: op "d", the reason in a header and in the audit
    lujiazui = read_all(kafka, names.delivery_topic(hub, "lujiazui-debtors"), idle=1.0)
    scoped = [r for r in lujiazui if dict(r.headers).get("xhub.reason") == OUT_OF_SCOPE.encode()]
    assert len(scoped) == 1
    assert serde.decode(scoped[0].value)[1]["op"] == "d"
    assert serde.decode(scoped[0].value)[1]["data"] is None
    audit = [  # one audit record per batch and chain: the entries are inside
        entry
        for r in read_all(kafka, names.audit_topic(hub), idle=1.0)
        for entry in (batch_entries(serde, r.value) or [])
    ]
    entries = [e for e in audit if e.get("reason") == OUT_OF_SCOPE]
    assert sorted(e["subscription"] for e in entries) == ["lujiazui-debtors", "unpaid-debtors"]
    assert all(e["kind"] == "delivered" and e["op"] == "d" for e in entries)
    assert verify_command(str(root), hub) == 0


def test_revocation_and_regrant_end_with_exactly_the_rows_in_scope(kafka: KafkaSettings, views: Any) -> None:
    root, _, process, court, dsn = views
    worker = process.worker
    a = court.create(PUDONG, UNPAID)
    b = court.create(PUDONG, PARTLY)
    court.create(HUANGPU, UNPAID)
    court.flush()
    wait_true(dsn, court, "the first rows")

    _set_active(root, "lujiazui-debtors", active=False)
    apply_config(root)
    wait_for(
        lambda: worker.policies.plans["lujiazui-debtors"].refusal == "revoked",
        what="the revocation installed",
    )
    court.update(a, district=HUANGPU)  # leaves the scope while revoked
    court.delete(b)  # deleted while revoked
    e = court.create(PUDONG, PARTLY)  # enters while revoked
    court.flush()
    wait_for(consumed(process, court.sent), what="the changes during the revocation consumed")
    time.sleep(1.0)
    assert cases(dsn, "lujiazui") >= {a, b}  # revoked: told nothing
    assert e not in cases(dsn, "lujiazui")

    _set_active(root, "lujiazui-debtors", active=True)
    apply_config(root)
    wait_for(
        lambda: getattr(worker.backfills.get("lujiazui-debtors"), "state", None) == "done",
        what="the re-granted subscription's backfill",
    )
    wait_true(dsn, court, "the views after the re-grant")
    assert e in cases(dsn, "lujiazui")
    assert not {a, b} & cases(dsn, "lujiazui")
