"""The built-in registry on a real broker: its compacted topic, restarts, several processes, config.

Each test uses its own schemas topic (and so its own transactional id), so tests never see each other.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from hub.core.errors import FatalError
from hub.core.kafka import ensure_topics, make_admin, make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.errors import IncompatibleSchema
from hub.core.registry.schema import canonical_text
from hub.registry.server import RegistryServer
from hub.registry.state import SchemaVersion, schema_record
from hub.registry.store import SchemaStore

ROOT = Path(__file__).resolve().parents[2]
PERSON = {
    "type": "record",
    "name": "Person",
    "namespace": "gov.xhub",
    "fields": [{"name": "name", "type": "string"}],
}
PERSON_V2 = {**PERSON, "fields": [*PERSON["fields"], {"name": "phone", "type": "string", "default": ""}]}
PERSON_BAD = {**PERSON, "fields": [*PERSON["fields"], {"name": "phone", "type": "string"}]}


@contextmanager
def registry(
    kafka: KafkaSettings, topic: str
) -> Iterator[tuple[SchemaStore, RegistryServer, RegistryClient]]:
    """One hub process's registry: a store on ``topic`` and its HTTP server."""
    store = SchemaStore(kafka, topic, timeout=20)
    store.start()
    server = RegistryServer(store)
    server.start()
    try:
        yield store, server, RegistryClient(server.url)
    finally:
        server.stop()
        store.stop()


def read_topic(kafka: KafkaSettings, topic: str) -> list[tuple[Any, Any]]:
    """Every committed record of the schemas topic, JSON-decoded."""
    consumer = make_consumer(kafka, "registry-test-reader", group_id=None)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    out: list[tuple[Any, Any]] = []
    deadline = time.monotonic() + 20
    while consumer.position(tp) < end and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            out.extend((json.loads(r.key), json.loads(r.value) if r.value else None) for r in records)
    consumer.close()
    return out


def test_register_and_read_over_http(kafka: KafkaSettings, unique_name: Callable[[str], str]) -> None:
    topic = unique_name("_xhub_schemas")
    with registry(kafka, topic) as (_store, _server, client):
        assert client.register("p-value", PERSON) == 1
        assert client.register("p-value", PERSON) == 1
        assert RegistryClient(client.url).register("p-value", PERSON) == 1  # idempotent on the server too
        assert client.register("p-value", PERSON_V2) == 2
        assert client.register("q-value", PERSON) == 1  # same text, same id, in every subject
        assert client.register("k", "string") == 3

        fresh = RegistryClient(client.url)
        assert fresh.get_schema(2) == PERSON_V2
        assert fresh.get_latest("p-value") == (2, 2, PERSON_V2)
        assert fresh.get_version("p-value", 1) == (1, 1, PERSON)
        assert fresh.lookup("q-value", PERSON) == 1
        assert fresh.lookup("q-value", PERSON_V2) is None
        assert fresh.subjects() == ["k", "p-value", "q-value"]

    # the topic: one partition, compacted, Confluent's _schemas layout, one record per registration
    admin = make_admin(kafka)
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs=["cleanup.policy"])]
    )
    assert described["topic"][topic]["cleanup.policy"]["value"] == "compact"
    assert [len(t["partitions"]) for t in admin.describe_topics([topic])] == [1]
    admin.close()
    records = read_topic(kafka, topic)
    assert records == [
        (
            {"keytype": "SCHEMA", "subject": "p-value", "version": 1, "magic": 1},
            {"subject": "p-value", "version": 1, "id": 1, "schema": canonical_text(PERSON), "deleted": False},
        ),
        (
            {"keytype": "SCHEMA", "subject": "p-value", "version": 2, "magic": 1},
            {
                "subject": "p-value",
                "version": 2,
                "id": 2,
                "schema": canonical_text(PERSON_V2),
                "deleted": False,
            },
        ),
        (
            {"keytype": "SCHEMA", "subject": "q-value", "version": 1, "magic": 1},
            {"subject": "q-value", "version": 1, "id": 1, "schema": canonical_text(PERSON), "deleted": False},
        ),
        (
            {"keytype": "SCHEMA", "subject": "k", "version": 1, "magic": 1},
            {"subject": "k", "version": 1, "id": 3, "schema": '"string"', "deleted": False},
        ),
    ]


def test_ids_survive_a_restart(kafka: KafkaSettings, unique_name: Callable[[str], str]) -> None:
    topic = unique_name("_xhub_schemas")
    with registry(kafka, topic) as (_store, _server, client):
        ids = {
            ("p-value", "v1"): client.register("p-value", PERSON),
            ("p-value", "v2"): client.register("p-value", PERSON_V2),
            ("k", "v1"): client.register("k", "long"),
        }
        client.set_config("FULL")
    assert ids == {("p-value", "v1"): 1, ("p-value", "v2"): 2, ("k", "v1"): 3}

    with registry(kafka, topic) as (store, _server, client):
        assert client.get_schema(1) == PERSON
        assert client.get_schema(3) == "long"
        assert client.get_latest("p-value") == (2, 2, PERSON_V2)
        assert client.register("p-value", PERSON_V2) == 2  # same schema, same id
        assert client.register("k", "long") == 3
        assert client.get_config() == "FULL"
        assert client.register("other", "string") == 4  # a fresh id, never a reused one
        assert store.get("other") == SchemaVersion("other", 1, 4, '"string"')


def test_two_processes_registering_concurrently_agree_on_ids(
    kafka: KafkaSettings, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("_xhub_schemas")
    # every version only adds an optional field, so any registration order is compatible
    texts = [
        canonical_text(
            {
                **PERSON,
                "fields": [
                    *PERSON["fields"],
                    *[{"name": f"f{i}", "type": "int", "default": 0} for i in range(k)],
                ],
            }
        )
        for k in range(6)
    ]
    work = [(subject, text) for subject in ("a-value", "b-value", "c-value") for text in texts]

    with registry(kafka, topic) as (_s1, server1, _c1), registry(kafka, topic) as (_s2, server2, _c2):
        results: list[dict[tuple[str, str], int]] = []
        lock = threading.Lock()

        def worker(seed: int) -> None:
            client = RegistryClient((server1, server2)[seed % 2].url, timeout=60)  # no shared client cache
            order = list(work)
            random.Random(seed).shuffle(order)
            got = {(subject, text): client.register(subject, text) for subject, text in order}
            with lock:
                results.append(got)

        with ThreadPoolExecutor(max_workers=6) as pool:
            for future in [pool.submit(worker, seed) for seed in range(6)]:
                future.result()

        # every caller of either process got the same id for the same (subject, schema)
        assert all(r == results[0] for r in results)
        ids = results[0]
        # the same text has the same id in every subject; different texts have different ids
        by_text = {text: {ids[(s, t)] for s, t in work if t == text} for text in texts}
        assert all(len(v) == 1 for v in by_text.values())
        assert sorted(v.pop() for v in by_text.values()) == list(
            range(1, len(texts) + 1)
        )  # no gaps: no losers

        # both processes hold the same subjects and versions
        answers = []
        for server in (server1, server2):
            client = RegistryClient(server.url)
            answers.append(
                {
                    s: [client.get_version(s, v)[:2] for v in client.versions(s)]
                    for s in ("a-value", "b-value", "c-value")
                }
            )
        assert answers[0] == answers[1]
        assert all([v for _, v in versions] == list(range(1, 7)) for versions in answers[0].values())

    # a third process reading the log from scratch agrees
    with registry(kafka, topic) as (_store, _server, client):
        assert {(s, t): client.lookup(s, t) for s, t in work} == ids
    assert len(read_topic(kafka, topic)) == len(
        work
    )  # one record per registration: nothing lost, no duplicates


_PROCESS = """
import json, random, sys
from hub.core.kafka_settings import KafkaSettings
from hub.registry.store import SchemaStore

bootstrap, topic, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SchemaStore(KafkaSettings(bootstrap_servers=bootstrap), topic, timeout=60)
store.start()
work = json.loads(sys.stdin.read())  # the parent releases every process at once
random.Random(seed).shuffle(work)
ids = {subject + "|" + text: store.register(subject, text).id for subject, text in work}
store.stop()
print(json.dumps(ids))
"""


def test_separate_os_processes_agree_on_ids(
    kafka: KafkaSettings, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = unique_name("_xhub_schemas")
    texts = [canonical_text({"type": "fixed", "name": f"F{i}", "size": i}) for i in range(5)]
    # subject aI and bI both hold text I: one id per text, whichever process registers first
    work = [[f"{prefix}{i}", text] for prefix in ("a", "b") for i, text in enumerate(texts)]
    procs = []
    for seed in range(3):
        with (tmp_path / f"out{seed}").open("w") as out, (tmp_path / f"err{seed}").open("w") as err:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _PROCESS, kafka.bootstrap_servers, topic, str(seed)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    text=True,
                )
            )
    try:
        for proc in procs:  # release them together
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(work))
            proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=120)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    outputs = []
    for seed, proc in enumerate(procs):
        assert proc.returncode == 0, (tmp_path / f"err{seed}").read_text()
        outputs.append(json.loads((tmp_path / f"out{seed}").read_text().strip().splitlines()[-1]))
    assert outputs[0] == outputs[1] == outputs[2]
    by_text = {text: {outputs[0][f"{p}{i}|{text}"] for p in ("a", "b")} for i, text in enumerate(texts)}
    assert all(len(ids) == 1 for ids in by_text.values())
    assert sorted(ids.pop() for ids in by_text.values()) == [1, 2, 3, 4, 5]
    assert len(read_topic(kafka, topic)) == len(work)


def test_a_writer_that_died_mid_write_leaves_nothing(
    kafka: KafkaSettings, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("_xhub_schemas")
    with registry(kafka, topic) as (store, _server, client):
        assert client.register("p-value", PERSON) == 1
        # another writer (same transactional id) claims version 2 / id 2 and dies before committing
        zombie = make_producer(kafka, "zombie", transactional_id=store.transactional_id, linger_ms=0)
        zombie.init_transactions()
        zombie.begin_transaction()
        key, value = schema_record(SchemaVersion("p-value", 2, 2, canonical_text("string")))
        zombie.send(topic, key=key, value=value, partition=0).get(timeout=10)

        assert RegistryClient(client.url).get_latest("p-value")[:2] == (1, 1)  # not visible: not committed
        assert client.register("p-value", PERSON_V2) == 2  # fences the zombie, aborting its write
        with pytest.raises(KafkaError):  # fenced
            zombie.commit_transaction()
        zombie.close(timeout=1)

    with registry(kafka, topic) as (_store, _server, client):
        assert client.get_schema(2) == PERSON_V2
        assert client.versions("p-value") == [1, 2]


def test_incompatible_schema_is_refused_with_409_naming_the_field(
    kafka: KafkaSettings, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("_xhub_schemas")
    with registry(kafka, topic) as (_store, server, client):
        client.register("p-value", PERSON)
        request = urllib.request.Request(
            f"{server.url}/subjects/p-value/versions",
            data=json.dumps({"schema": json.dumps(PERSON_BAD)}).encode(),
            method="POST",
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 409
        error = json.loads(caught.value.read())
        assert error["error_code"] == 409
        assert 'field "phone" of record gov.xhub.Person: added without a default' in error["message"]

        with pytest.raises(IncompatibleSchema) as refused:
            client.register("p-value", PERSON_BAD)
        assert refused.value.messages == [
            'field "phone" of record gov.xhub.Person: added without a default '
            "(a BACKWARD reader cannot read old data)"
        ]
        assert client.versions("p-value") == [1]
    assert len(read_topic(kafka, topic)) == 1  # nothing written for the refusals


def test_per_subject_compatibility_override(kafka: KafkaSettings, unique_name: Callable[[str], str]) -> None:
    topic = unique_name("_xhub_schemas")
    with registry(kafka, topic) as (_s1, _srv1, client), registry(kafka, topic) as (_s2, _srv2, other):
        client.register("loose-value", PERSON)
        client.register("strict-value", PERSON)
        assert client.set_config("NONE", "loose-value") == "NONE"

        assert other.get_config("loose-value") == "NONE"  # the other process sees it at once
        assert other.get_config("strict-value") == "BACKWARD"
        assert other.get_config() == "BACKWARD"
        assert other.register("loose-value", PERSON_BAD) == 2
        with pytest.raises(IncompatibleSchema):
            other.register("strict-value", PERSON_BAD)

        assert client.set_config("FORWARD") == "FORWARD"
        assert other.get_config("strict-value") == "FORWARD"
        assert other.test_compatibility("strict-value", PERSON_BAD) == []  # FORWARD: adding a field is fine

    with registry(kafka, topic) as (_store, _server, client):
        assert client.get_config("loose-value") == "NONE"
        assert client.get_config() == "FORWARD"


def test_a_schemas_topic_with_several_partitions_is_refused(
    kafka: KafkaSettings, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("_xhub_schemas")
    admin = make_admin(kafka)
    ensure_topics(admin, {topic: {"cleanup.policy": "compact"}}, partitions=3)
    admin.close()
    store = SchemaStore(kafka, topic, timeout=20)
    with pytest.raises(FatalError, match=f"{topic} has 3 partitions"):
        store.start()
    store.stop()
