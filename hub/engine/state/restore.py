"""Restore: bring the stores of newly owned source partitions up to the changelog's end.

Each store knows the changelog offset it has applied up to (its checkpoint); the restore reads the
changelog partition from the smallest checkpoint of the partitions it serves up to the end (read
committed: only entries of committed transactions, in commit order), applies the entries of those
partitions in SQLite transactions of ``batch_records`` records with the checkpoint moved in each, so a
worker killed in the middle of a restore resumes it where it stopped. The worker routes nothing of a
partition before its store is restored (Kafka Streams' restoring tasks do the same). Progress goes into
the worker's stats for the monitor (``restore_*``), the duration into the log (``state_restored``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError

from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import get_logger
from hub.engine.state.changelog import Changelog, Entry, decode
from hub.engine.state.store import PartitionStore, StateStore
from hub.engine.stats import WorkerStats

log = get_logger("engine")

STALL_S = 60.0  # a restore that reads nothing new this long gives up (the worker tries again)


class Restorer:
    """Restores partition stores from the changelog with its own read_committed consumer."""

    def __init__(
        self,
        kafka: KafkaSettings,
        client_id: str,
        changelog: Changelog,
        stats: WorkerStats,
        *,
        batch_records: int = 5000,
    ) -> None:
        self.kafka = kafka
        self.client_id = client_id
        self.changelog = changelog
        self.stats = stats
        self.batch_records = batch_records
        self._consumer: KafkaConsumer | None = None

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _reader(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = make_consumer(
                self.kafka, self.client_id, group_id=None, max_poll_records=self.batch_records
            )
        return self._consumer

    def restore(self, store: StateStore, tps: Iterable[TopicPartition]) -> None:
        """Open and restore the stores of ``tps`` (KafkaError propagates: the caller tries again)."""
        started = time.perf_counter()
        wanted = sorted(set(tps))
        by_cp: dict[int, list[TopicPartition]] = {}
        for tp in wanted:
            store.open(tp)
            by_cp.setdefault(self.changelog.partition_of(tp), []).append(tp)
        consumer = self._reader()
        cps = [TopicPartition(self.changelog.topic, cp) for cp in sorted(by_cp)]
        ends = consumer.end_offsets(cps) if cps else {}
        starts: dict[TopicPartition, int] = {}
        for ctp in cps:
            end = int(ends.get(ctp, 0))
            for tp in by_cp[ctp.partition]:
                if not self._current(consumer, ctp, store.stores[tp], end):  # of another changelog
                    log.warning("state_store_stale", topic=tp.topic, partition=tp.partition, end=end)
                    store.stores[tp].wipe()
            starts[ctp] = min(store.stores[tp].next_offset for tp in by_cp[ctp.partition])
        with self.stats.lock:
            self.stats.restore_partitions_total = len(wanted)
            self.stats.restore_partitions_done = 0
            self.stats.restore_records_total = sum(max(0, int(ends[c]) - starts[c]) for c in cps)
            self.stats.restore_records_done = 0
        records = 0
        for ctp in cps:
            records += self._restore_partition(store, consumer, ctp, starts[ctp], int(ends[ctp]), by_cp)
        for tp in wanted:
            store.loaded(tp)
        seconds = time.perf_counter() - started
        with self.stats.lock:
            self.stats.restore_seconds = seconds
        log.info(
            "state_restored",
            hub=self.changelog.hub,
            partitions=len(wanted),
            records=records,
            ms=round(seconds * 1000),
        )

    @staticmethod
    def _current(consumer: KafkaConsumer, ctp: TopicPartition, part: PartitionStore, end: int) -> bool:
        """Whether ``part`` was written against this changelog (not one deleted and re-created since)."""
        at, key = part.next_offset, part.last_key
        if at > end:
            return False
        if at == 0 or key is None:
            return True
        consumer.assign([ctp])
        consumer.seek(ctp, at - 1)
        records = consumer.poll(timeout_ms=1000, max_records=1).get(ctp, [])
        # Compaction may have removed that record (a newer one of the same key exists): no verdict then.
        return not records or records[0].offset != at - 1 or records[0].key == key

    def _restore_partition(  # noqa: PLR0917 - the store, the reader and the range to read
        self,
        store: StateStore,
        consumer: KafkaConsumer,
        ctp: TopicPartition,
        start: int,
        end: int,
        by_cp: dict[int, list[TopicPartition]],
    ) -> int:
        mine = by_cp[ctp.partition]
        targets = {tp: store.stores[tp] for tp in mine}
        read = 0
        if start < end:
            consumer.assign([ctp])
            consumer.seek(ctp, start)
            position = start
            stalled_since = time.monotonic()
            while position < end:
                pending: dict[TopicPartition, list[Entry]] = {tp: [] for tp in mine}
                polled = consumer.poll(timeout_ms=500, max_records=self.batch_records).get(ctp, [])
                inside = [rec for rec in polled if rec.offset < end]
                for rec in inside:
                    entry = decode(rec.key, rec.value)
                    if (
                        entry is not None
                        and entry.tp in targets
                        and rec.offset >= targets[entry.tp].next_offset
                    ):
                        pending[entry.tp].append(entry)
                at = min(int(consumer.position(ctp)), end)
                if at > position:
                    stalled_since = time.monotonic()
                elif time.monotonic() - stalled_since > STALL_S:
                    raise KafkaTimeoutError(
                        f"restore of {ctp.topic}-{ctp.partition} made no progress at offset {position} "
                        f"for {STALL_S:.0f} s (end {end})"
                    )
                position = at
                for tp, entries in pending.items():
                    targets[tp].apply(entries, position)
                read += len(inside)
                with self.stats.lock:
                    self.stats.restore_records_done += len(inside)
        for tp in mine:
            targets[tp].apply([], end)  # transaction markers past the last entry: nothing left to read
        with self.stats.lock:
            self.stats.restore_partitions_done += len(mine)
        return read
