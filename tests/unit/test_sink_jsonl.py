"""JsonlSink: one line per delivery, offsets stored atomically, uncommitted bytes cut on restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.sinks import Delivery, JsonlSink, JsonlSinkConfig, SinkConfigError
from connectors.sinks.base import PartitionProgress

TOPIC = "xhub.dlv.hub1.lic"


def delivery(key: str, seq: int, offset: int, partition: int = 0) -> Delivery:
    return Delivery(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=key,
        op="u",
        seq=seq,
        event_id=f"ev-{offset}",
        policy_version=None,
        subscription="lic",
        data={"licence_no": key, "amount": b"\x00\x01"},
        source_commit_ts_ms=1,
    )


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_appends_lines_and_stores_offsets(tmp_path: Path) -> None:
    path = tmp_path / "out" / "deliveries.jsonl"
    with JsonlSink(JsonlSinkConfig(path=path)) as sink:
        sink.write([delivery("A", 1, 0), delivery("B", 2, 1)])
        sink.write([delivery("C", 3, 0, partition=1)], [PartitionProgress(TOPIC, 1, 0, 4)])
    got = lines(path)
    assert [(r["key"], r["offset"], r["partition"]) for r in got] == [("A", 0, 0), ("B", 1, 0), ("C", 0, 1)]
    assert got[0]["data"] == {"licence_no": "A", "amount": "AAE="}
    state = json.loads((tmp_path / "out" / "deliveries.jsonl.offsets.json").read_text())
    assert state["size"] == path.stat().st_size
    assert JsonlSink(JsonlSinkConfig(path=path)).committed_offsets([(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)]) == {
        (TOPIC, 0): 2,
        (TOPIC, 1): 4,
    }


def test_restart_cuts_uncommitted_bytes_and_skips_what_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonlSink(JsonlSinkConfig(path=path)) as sink:
        sink.write([delivery("A", 1, 0), delivery("B", 2, 1)])
    with path.open("ab") as f:
        f.write(b'{"key": "half a line written by a batch whose offsets never landed')
    with JsonlSink(JsonlSinkConfig(path=path)) as sink:
        assert len(lines(path)) == 2
        sink.write([delivery("B", 2, 1), delivery("C", 3, 2)])  # offset 1 is stored already
    assert [r["key"] for r in lines(path)] == ["A", "B", "C"]


def test_a_foreign_offsets_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    (tmp_path / "d.jsonl.offsets.json").write_text('{"something": "else"}')
    with pytest.raises(SinkConfigError, match="offsets"):
        JsonlSink(JsonlSinkConfig(path=path)).open()
