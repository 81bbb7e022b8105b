"""The shared test suite every source passes, against real Kafka and its real department system.

Like singer-sdk's ``get_tap_test_class``: subclass ``SourceSuite`` in a test module and name a harness::

    class TestSqliteTrigger(SourceSuite):
        harness_class = SqlTriggerHarness

The fixtures ``kafka``, ``pg_database`` and ``tmp_path`` come from the project's pytest plugin. Each test
gets its own department id (hence its own topics), catalog, database and sidecar, and checks:

- inserts, updates and deletes arrive as c/u/d events, per key in order, with increasing seq;
- existing rows arrive as a snapshot of r events on first start, and again on request (POST /snapshot);
- bad records land in the department's dead-letter topic with reason, field and original bytes, while
  the good records around them arrive;
- a restart resumes where the last commit ended: every change exactly once.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from connectors.cli import install
from connectors.testing.catalog import write_catalog, write_connector_config
from connectors.testing.harness import HttpPushHarness, SourceHarness
from connectors.testing.kafka import Consumed, TopicReader, events_of
from connectors.testing.records import CORPUS, INVALID_UTF8_NAME, RESOURCE, bad_record, citizen_id, record
from connectors.testing.runtime import running_sidecar, serde_for, shared_registry
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import dead_letter_topic, source_topic
from hub.core.registry.serde import AvroSerde


@dataclass
class SuiteEnv:
    """One test's department: its ids, topics, config file, harness and a serde to read topics."""

    dept: str
    config_path: Path
    harness: SourceHarness
    kafka: KafkaSettings
    serde: AvroSerde
    topic: str
    dlq_topic: str

    def reader(self, *topics: str) -> TopicReader:
        return TopicReader(self.kafka, list(topics or (self.topic,)), self.serde)


def by_key(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Events grouped by business key, in topic order."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        out[event["key"]].append(event)
    return out


def assert_exactly_once(events: list[dict[str, Any]]) -> None:
    """No (key, seq, op) twice, and per key seq never goes down."""
    seen: set[tuple[str, int, str]] = set()
    for key, items in by_key(events).items():
        seqs = [e["seq"] for e in items]
        assert seqs == sorted(seqs), f"seq of one key goes down: {seqs}"
        for e in items:
            ident = (key, e["seq"], e["op"])
            assert ident not in seen, f"event {ident} published twice"
            seen.add(ident)


class SourceSuite:
    """Base class of the per-source test classes (not collected itself: its name has no Test prefix)."""

    harness_class: ClassVar[type[SourceHarness]]

    @pytest.fixture
    def env(self, kafka: KafkaSettings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SuiteEnv]:
        pg = str(request.getfixturevalue("pg_database")) if self.harness_class.needs_postgres else None
        registry = shared_registry()
        dept = f"t{uuid.uuid4().hex[:10]}"
        catalog = write_catalog(
            tmp_path / "config", dept, bootstrap=kafka.bootstrap_servers, registry_url=registry.url
        )
        harness = self.harness_class(tmp_path, pg_dsn=pg)
        harness.prepare()
        config_path = write_connector_config(
            tmp_path / "connector.yaml",
            dept=dept,
            catalog=catalog,
            bootstrap=kafka.bootstrap_servers,
            registry_url=registry.url,
            sources=[harness.source_config("src")],
        )
        assert install(config_path) == 0
        try:
            yield SuiteEnv(
                dept,
                config_path,
                harness,
                kafka,
                serde_for(registry.url),
                source_topic(dept, RESOURCE),
                dead_letter_topic(dept),
            )
        finally:
            harness.close()

    # --- c / u / d -------------------------------------------------------------------------------

    def test_inserts_updates_deletes_arrive_as_cud_in_per_key_order(self, env: SuiteEnv) -> None:
        h = env.harness
        with running_sidecar(env.config_path) as sidecar:
            h.attach(sidecar)
            for n in range(20):
                h.insert(record(n))
            for n in range(0, 20, 2):
                h.update(record(n, score=1000 + n))
            for n in range(0, 20, 4):
                h.delete(citizen_id(n))
            expected = 20 + 10 + 5
            reader = env.reader()
            records = reader.read_until(lambda rs: len(rs) >= expected)
            records = reader.read_quiet(quiet_s=1.0)
            reader.close()
        events = events_of(records, env.topic)
        assert len(events) == expected, (
            f"expected {expected} events, got {[(e['op'], e['seq'], e['key'][-4:]) for e in events]}"
        )
        grouped = by_key(events)
        for n in range(20):
            ops = [e["op"] for e in grouped[citizen_id(n)]]
            want = ["c"] + (["u"] if n % 2 == 0 else []) + (["d"] if n % 4 == 0 else [])
            assert ops == want, f"record {n}: ops {ops}, expected {want}"
            seqs = [e["seq"] for e in grouped[citizen_id(n)]]
            assert seqs == sorted(set(seqs)), f"record {n}: seq not strictly increasing: {seqs}"
        for n in range(0, 20, 2):
            update = next(e for e in grouped[citizen_id(n)] if e["op"] == "u")
            assert update["data"]["score"] == 1000 + n
        for events_of_key in grouped.values():
            for e in events_of_key:
                assert (e["data"] is None) == (e["op"] == "d")
                assert e["resource"] == RESOURCE
                assert e["source"]["dept"] == env.dept
        first = grouped[citizen_id(1)][0]
        assert first["data"]["name"] == "参保人1"
        assert first["data"]["gender"] == "F"
        assert str(first["data"]["birth_date"]) == "1985-06-01"
        assert_exactly_once(events)

    # --- dead letters ----------------------------------------------------------------------------

    def test_bad_records_are_dead_lettered_with_reason_and_original_bytes(self, env: SuiteEnv) -> None:
        h = env.harness
        cases = sorted(h.corpus)
        with running_sidecar(env.config_path) as sidecar:
            h.attach(sidecar)
            h.insert(record(1))
            for i, case in enumerate(cases):
                h.write_bad(case, 100 + i)
            h.insert(record(2))
            reader = env.reader(env.topic, env.dlq_topic)
            records = reader.read_until(
                lambda rs: (
                    len(events_of(rs, env.topic)) >= 2 and len(events_of(rs, env.dlq_topic)) >= len(cases)
                )
            )
            records = reader.read_quiet(quiet_s=1.0)
            reader.close()
        good = events_of(records, env.topic)
        assert sorted(e["key"] for e in good) == sorted([citizen_id(1), citizen_id(2)])
        dead = [r for r in records if r.topic == env.dlq_topic]
        assert sorted(r.value["reason"] for r in dead) == sorted(CORPUS[c] for c in cases)
        for letter in dead:
            _check_dead_letter(letter, env.dept)
        by_reason = {r.value["reason"]: r.value for r in dead}
        if "invalid_utf8" in by_reason:
            assert INVALID_UTF8_NAME in by_reason["invalid_utf8"]["original"]
        if "bad_id_check_digit" in by_reason:
            assert by_reason["bad_id_check_digit"]["field"] == "id_number"
            bad_id = bad_record("bad_id_check_digit", 100 + cases.index("bad_id_check_digit"))["id_number"]
            assert bad_id.encode() in by_reason["bad_id_check_digit"]["original"]
            assert bad_id not in by_reason["bad_id_check_digit"]["detail"], (
                "a detail must not quote the value"
            )
        if "wrong_type" in by_reason:
            assert by_reason["wrong_type"]["field"] == "score"
        if "bad_credit_code" in by_reason:
            assert by_reason["bad_credit_code"]["field"] == "employer_code"
        if isinstance(h, HttpPushHarness):
            _check_http_answers(h, cases)

    # --- restart ---------------------------------------------------------------------------------

    def test_restart_resumes_without_loss_or_duplicates(self, env: SuiteEnv) -> None:
        h = env.harness
        with running_sidecar(env.config_path) as sidecar:
            h.attach(sidecar)
            for n in range(10):
                h.insert(record(n))
            reader = env.reader()
            reader.read_until(lambda rs: len(rs) >= 10)
        if not isinstance(h, HttpPushHarness):
            # Changes made while the sidecar is down are captured and published after the restart.
            for n in range(10, 20):
                h.insert(record(n))
            for n in range(0, 10, 2):
                h.update(record(n, score=-n))
        with running_sidecar(env.config_path) as sidecar:
            h.attach(sidecar)
            if isinstance(h, HttpPushHarness):
                for n in range(10, 20):
                    h.insert(record(n))
                for n in range(0, 10, 2):
                    h.update(record(n, score=-n))
            records = reader.read_until(lambda rs: len(rs) >= 25)
            records = reader.read_quiet(quiet_s=1.5)
            reader.close()
        events = events_of(records, env.topic)
        assert len(events) == 25
        assert_exactly_once(events)
        assert sorted({e["key"] for e in events}) == sorted(citizen_id(n) for n in range(20))


class SnapshotSuite(SourceSuite):
    """``SourceSuite`` plus the snapshot checks, for sources that can read their whole table."""

    # --- snapshot --------------------------------------------------------------------------------

    def test_snapshot_of_existing_rows_as_r_events_and_again_on_request(self, env: SuiteEnv) -> None:
        h = env.harness
        for n in range(30):
            h.insert(record(n))  # existing rows, before the sidecar ever ran
        with running_sidecar(env.config_path) as sidecar:
            reader = env.reader()
            reader.read_until(lambda rs: len(rs) >= 30)
            h.update(record(5, score=555))
            reader.read_until(lambda rs: len(rs) >= 31)
            assert sidecar.health is not None
            url = f"{sidecar.health.url}/snapshot"
            request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 - local test URL
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local test URL
                assert response.status == 202
                assert json.loads(response.read())["snapshot_started"] == ["src"]
            records = reader.read_until(lambda rs: len(rs) >= 61)
            records = reader.read_quiet(quiet_s=1.0)
            reader.close()
        events = events_of(records, env.topic)
        assert [e["op"] for e in events].count("r") == 60
        assert [e["op"] for e in events].count("u") == 1
        assert len(events) == 61
        grouped = by_key(events)
        five = grouped[citizen_id(5)]
        assert [e["op"] for e in five] == ["r", "u", "r"]
        assert five[1]["seq"] > five[0]["seq"]
        assert five[2]["seq"] >= five[1]["seq"], "a snapshot must not go back behind a change it includes"
        assert five[2]["data"]["score"] == 555
        assert all(len(v) == 2 or k == citizen_id(5) for k, v in grouped.items())


def source_test_class(harness_class: type[SourceHarness], name: str | None = None) -> type[SourceSuite]:
    """The suite class for a harness (with the snapshot checks when the source supports them)."""
    base = SnapshotSuite if harness_class.supports_snapshot else SourceSuite
    return type(name or f"Test{harness_class.__name__}", (base,), {"harness_class": harness_class})


def _check_dead_letter(letter: Consumed, dept: str) -> None:
    value = letter.value
    assert value["owner"] == dept
    assert value["resource"] == RESOURCE
    assert value["original"], "a dead letter keeps the original bytes"
    assert value["detail"]
    assert letter.headers["xhub.reason"] == value["reason"].encode()
    assert letter.headers["xhub.origin"] == value["origin"].encode()
    assert letter.headers["xhub.field"] == (value["field"] or "").encode()


def _check_http_answers(h: HttpPushHarness, cases: list[str]) -> None:
    bad_answers = [a for a in h.answers if a[0] != 202]
    assert len(bad_answers) == len(cases)
    expected_status = {"oversize": 413, "invalid_utf8": 400}
    for case, (status, answer) in zip(cases, bad_answers, strict=True):
        assert status == expected_status.get(case, 422), f"{case}: {status} {answer}"
        rejected = answer["rejected"]
        assert rejected[0]["reason"] == CORPUS[case]
        assert rejected[0]["detail"]
