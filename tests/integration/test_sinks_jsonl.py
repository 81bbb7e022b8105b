"""SinkLoop + JsonlSink with a real broker: each delivery once in the file, across a crash and restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from connectors.runtime.sink_loop import SinkLoop
from connectors.sinks import JsonlSink, JsonlSinkConfig
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import delivery_topic
from hub.registry.server import RegistryServer
from tests.integration.sinks_support import (
    Change,
    DeliveryProducer,
    Sent,
    licence,
    make_topic,
    next_offsets,
    wait_for,
)


def run_until_caught_up(loop: SinkLoop, path: Path, topic: str, sent: list[Sent]) -> None:
    want = next_offsets(topic, sent)
    state = path.with_name(path.name + ".offsets.json")

    def stored() -> dict[tuple[str, int], int]:
        # Read the offsets file itself: opening a second JsonlSink would cut the running one's tail.
        if not state.exists():
            return {}
        offsets = json.loads(state.read_text())["offsets"]
        return {(o["topic"], o["partition"]): o["next_offset"] for o in offsets}

    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: stored() == want, 30, "the file to catch up")
    finally:
        loop.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_jsonl_file_holds_each_delivery_once_across_a_crash(
    kafka: KafkaSettings, memory_registry: RegistryServer, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    topic = delivery_topic("hub1", unique_name("lic"))
    make_topic(kafka, topic)
    path = tmp_path / "deliveries.jsonl"
    producer = DeliveryProducer(kafka, memory_registry.url, topic)

    def loop() -> SinkLoop:
        # A fresh group each time: the file's own offsets, not Kafka's, decide where to resume.
        sink = JsonlSink(JsonlSinkConfig(path=path))
        return SinkLoop(
            kafka,
            memory_registry.url,
            topic,
            unique_name("g"),
            sink,
            dept=unique_name("dept"),
            poll_timeout_ms=200,
        )

    try:
        sent = producer.send([Change(f"K{i}", "u", i, licence(f"K{i}", i)) for i in range(30)])
        run_until_caught_up(loop(), path, topic, sent)
        # A crash after the lines were written but before the offsets file was replaced leaves a tail.
        with path.open("ab") as f:
            f.write(b'{"event_id": "torn')
        sent += producer.send([Change(f"K{i}", "d", 100 + i) for i in range(10)])
        run_until_caught_up(loop(), path, topic, sent)
    finally:
        producer.close()

    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert sorted((r["partition"], r["offset"]) for r in lines) == sorted(
        (s.partition, s.offset) for s in sent
    )
    by_offset = {(s.partition, s.offset): s.change for s in sent}
    for line in lines:
        change = by_offset[(line["partition"], line["offset"])]
        assert change is not None
        assert (line["key"], line["seq"], line["op"], line["event_id"]) == (
            change.key,
            change.seq,
            change.op,
            change.event_id,
        )
        assert line["policy_version"] == "pv-1"
        assert line["data"] == (
            None if change.data is None else {**change.data, "issued": change.data["issued"].isoformat()}
        )
