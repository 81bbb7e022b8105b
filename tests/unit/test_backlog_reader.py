"""The hub's reader of backlog reports keeps reading the departments whose partitions answer when one does
not (hub.monitor.backlog; seen on the secure demo: kafka-python's offset lookup raised KeyError for one
partition whose leader it did not know yet, and every report stayed unread)."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from kafka import TopicPartition

from hub.core.backlog_report import REPORT_KEY, BacklogReport, SourceBacklog
from hub.core.kafka_settings import KafkaSettings
from hub.monitor.backlog import BacklogReader


class _Consumer:
    """A stand-in consumer over one report per department, whose offset lookups fail for ``broken``."""

    def __init__(self, reports: dict[str, BacklogReport], broken: str) -> None:
        self.records = {
            TopicPartition(f"xhub.backlog.{d}", 0): [
                SimpleNamespace(offset=0, key=REPORT_KEY.encode(), value=r.encode())
            ]
            for d, r in reports.items()
        }
        self.broken = TopicPartition(f"xhub.backlog.{broken}", 0)
        self.assigned: list[TopicPartition] = []
        self.at: dict[TopicPartition, int] = {}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def _offsets(self, tps: Iterable[TopicPartition], end: bool) -> dict[TopicPartition, int]:
        if self.broken in tps:
            raise KeyError(self.broken)  # as kafka-python's Fetcher.beginning_or_end_offset does
        return {tp: len(self.records[tp]) if end else 0 for tp in tps}

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return self._offsets(tps, end=True)

    def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return self._offsets(tps, end=False)

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = list(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.at[tp] = offset

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        out = {tp: self.records[tp][self.at[tp] :] for tp in self.assigned}
        for tp in self.assigned:
            self.at[tp] = len(self.records[tp])
        return {tp: rs for tp, rs in out.items() if rs}

    def position(self, tp: TopicPartition) -> int:
        return self.at[tp]

    def unsubscribe(self) -> None:
        self.assigned = []


def _report(dept: str) -> BacklogReport:
    source = SourceBacklog("sql_trigger", "running", 0, None, resources=("PD-CRD-0001",))
    return BacklogReport(dept, 1_796_000_000_000, 30.0, {f"{dept}-db": source})


def test_one_partition_that_does_not_answer_hides_no_other_departments_report() -> None:
    reports = {d: _report(d) for d in ("amr", "court", "psb")}
    consumer = _Consumer(reports, broken="amr")
    reader = BacklogReader(KafkaSettings(bootstrap_servers="unused:9092"), consumer=consumer)  # type: ignore[arg-type]
    got = reader.latest(["amr", "court", "psb"])
    assert got["amr"] is None
    assert got["court"] == reports["court"]
    assert got["psb"] == reports["psb"]
