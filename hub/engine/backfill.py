"""The backfill reader: the current state of a source partition as of a handover offset, then the catch-up.

A compacted topic holds the current state only after the cleaner has run, so the reader does not trust
compaction: it first scans the partition up to the handover offset and keeps, per message key, the
offset of the last event (keys and offsets only, no decoding); then it reads the range again and hands
out exactly those last events, as op "r", unless the last event is a delete (a key that no longer exists
is not sent as state; the delete goes only to filtered subscriptions that still hold the key).
From the handover offset on it hands out every record as it is, up to the end of the partition (or up
to an offset the main loop names): there it is caught up, and the main loop takes the subscription over
(see backfill_driver.py).

The reader does no producing and keeps nothing durable: the backfill task delivers each chunk in a
transaction
that also records the new position (see handover.py), so a crash anywhere resumes at the last committed
position; the scan is simply redone. Compaction between two scans can only remove a key's last event
below the handover when a newer event of that key exists above it; the subscriber then gets that key
from the catch-up instead, still once and in order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition

from hub.core.errors import InvalidRecord
from hub.core.kafka import make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.policy.plan import DeliveryPlan

OPEN_END = 2**62  # the catch-up's limit when the main loop named none: read to the partition's end


class Decoder(Protocol):
    """Decodes the change event of a record of a topic (``hub.engine.readers.SourceReaders`` is one)."""

    def decode(self, topic: str, value: bytes) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BackfillTask:
    """Subscriptions at the same point of the backfill of one partition, served by one read."""

    tp: TopicPartition
    snapshot_end: int
    position: int
    log_start: int
    plans: tuple[DeliveryPlan, ...]

    @property
    def subscriptions(self) -> list[str]:
        return [p.subscription for p in self.plans]


@dataclass(frozen=True, slots=True)
class BackfillRow:
    """One record to route: ``event`` decoded (op "r" in the snapshot), or ``error`` when undecodable."""

    record: Any
    event: dict[str, Any] | None
    error: InvalidRecord | None = None


@dataclass(frozen=True)
class BackfillChunk:
    """What one backfill transaction carries."""

    task: BackfillTask
    rows: list[BackfillRow]
    position: int  # the task's position after this chunk
    live_at: int | None  # set: caught up at this offset with this chunk; the main loop takes over
    snapshot: bool  # rows are state rows (op "r") rather than catch-up records
    examined: int  # source records read for this chunk


@dataclass
class _Scan:
    """Pass one over [log start, snapshot end): the offset of the last event of each message key."""

    position: int
    last: dict[bytes, int] = field(default_factory=dict)
    complete: bool = False


class Backfiller:
    """Reads source partitions for backfills, one task at a time (its own read_committed consumer).

    Args:
        kafka: cluster settings.
        client_id: client id of the reader.
        decoder: decodes change events (the worker's readers: the catalog's schema of each topic).
        chunk_records: most records per delivering step (one transaction each).
        chunk_deliveries: most deliveries per delivering step: a task serving many subscriptions reads
            fewer records per step, so one transaction stays well inside the transaction timeout.
        scan_records: most records per scanning step (no transaction: keys only).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        client_id: str,
        decoder: Decoder,
        *,
        chunk_records: int = 2000,
        chunk_deliveries: int = 2000,
        scan_records: int = 50000,
        poll_ms: int = 200,
    ) -> None:
        self.kafka = kafka
        self.client_id = client_id
        self.decoder = decoder
        self.chunk_records = chunk_records
        self.chunk_deliveries = chunk_deliveries
        self.scan_records = scan_records
        self.poll_ms = poll_ms
        self._consumer: KafkaConsumer | None = None
        self._assigned: TopicPartition | None = None
        self._reader_at: int | None = None  # where the reader's next poll starts, when known
        self._highwater: int | None = None  # the partition's high watermark at the last read
        self._scans: dict[tuple[TopicPartition, int], _Scan] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop what is known of partitions this worker no longer owns."""
        gone = set(tps)
        self._scans = {k: v for k, v in self._scans.items() if k[0] not in gone}
        if self._assigned in gone:
            self._reader_at = None

    def retain(self, tasks: Iterable[BackfillTask]) -> None:
        """Forget the scans of backfills that are no longer wanted (abandoned, or of another range)."""
        keep = {(t.tp, t.snapshot_end) for t in tasks}
        self._scans = {k: v for k, v in self._scans.items() if k in keep}

    def rewind(self) -> None:
        """After an aborted transaction: the next read seeks to the task's committed position."""
        self._reader_at = None

    def phase(self, task: BackfillTask) -> str:
        if task.position >= task.snapshot_end:
            return "catching_up"
        scan = self._scans.get((task.tp, task.snapshot_end))
        return "delivering" if scan is not None and scan.complete else "scanning"

    # -- one step ----------------------------------------------------------------------------------
    def step(self, task: BackfillTask, limit: int | None = None) -> BackfillChunk | None:
        """Advance ``task``; a chunk to deliver, or None when this step only scanned or read nothing.

        ``limit``: where the catch-up stops (the main loop's position, when it asked for it); None: at
        the end of the partition, when a read finds nothing more.
        """
        if task.position < task.snapshot_end:
            scan = self._scans.get((task.tp, task.snapshot_end))
            if scan is None or not scan.complete:
                self._scan(task)
                return None
            return self._snapshot_chunk(task, scan)
        self._scans.pop((task.tp, task.snapshot_end), None)  # the snapshot is behind: free the key map
        return self._catch_up_chunk(task, limit)

    def _scan(self, task: BackfillTask) -> None:
        key = (task.tp, task.snapshot_end)
        scan = self._scans.get(key)
        if scan is None:
            scan = self._scans[key] = _Scan(position=task.log_start)
        budget = self.scan_records
        deadline = time.monotonic() + 0.5
        while budget > 0 and time.monotonic() < deadline:
            records, nxt = self._read(task.tp, scan.position, task.snapshot_end, min(budget, 10000))
            last = scan.last
            for rec in records:
                if rec.key is not None:
                    last[rec.key] = rec.offset
            budget -= len(records)
            progressed = nxt > scan.position
            scan.position = nxt
            if nxt >= task.snapshot_end:
                scan.complete = True
                return
            if not progressed:
                return

    def _snapshot_chunk(self, task: BackfillTask, scan: _Scan) -> BackfillChunk | None:
        records, nxt = self._read(task.tp, task.position, task.snapshot_end, self._chunk(task))
        if nxt == task.position:
            return None
        last = scan.last
        rows: list[BackfillRow] = []
        for rec in records:
            # A keyless record (against the contract) cannot be superseded: it stands for itself.
            if rec.key is not None and last.get(rec.key) != rec.offset:
                continue
            if rec.value is None:
                continue  # a compaction tombstone: the key is gone
            try:
                event = self.decoder.decode(rec.topic, rec.value)
            except InvalidRecord as exc:
                rows.append(BackfillRow(rec, None, exc))
                continue
            if event.get("op") == "d":
                # Deleted at the source: no state to send, but a filtered subscription that still holds
                # the key (from before a revocation) is told (the emitter routes it to those only).
                rows.append(BackfillRow(rec, event))
                continue
            rows.append(BackfillRow(rec, {**event, "op": "r"}))
        return BackfillChunk(task, rows, nxt, None, snapshot=True, examined=len(records))

    def _catch_up_chunk(self, task: BackfillTask, limit: int | None) -> BackfillChunk | None:
        if limit is not None and task.position >= limit:
            return BackfillChunk(task, [], task.position, task.position, snapshot=False, examined=0)
        most = self._chunk(task)
        records, nxt = self._read(task.tp, task.position, limit or OPEN_END, most)
        if nxt == task.position:
            if limit is None:  # nothing more to read: caught up with the partition's end
                return BackfillChunk(task, [], task.position, task.position, snapshot=False, examined=0)
            return None
        rows: list[BackfillRow] = []
        for rec in records:
            if rec.value is None:
                rows.append(BackfillRow(rec, None, InvalidRecord("tombstone", "compaction tombstone")))
                continue
            try:
                event = self.decoder.decode(rec.topic, rec.value)
            except InvalidRecord as exc:
                rows.append(BackfillRow(rec, None, exc))
                continue
            rows.append(BackfillRow(rec, event))
        if limit is not None:
            caught_up = nxt >= limit
        else:
            # Near the end (a short read, less than a chunk left): under steady traffic a read never
            # comes back empty, so the main loop takes over here and closes the small gap left.
            high = self._highwater
            caught_up = len(records) < most and (high is None or high - nxt < most)
        return BackfillChunk(
            task, rows, nxt, nxt if caught_up else None, snapshot=False, examined=len(records)
        )

    def _chunk(self, task: BackfillTask) -> int:
        """Records for one delivering step of ``task``: the chunk, fewer when it fans out wide."""
        return max(1, min(self.chunk_records, self.chunk_deliveries // max(1, len(task.plans))))

    # -- reading -----------------------------------------------------------------------------------
    def _reader(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = make_consumer(self.kafka, self.client_id, group_id=None, max_poll_records=10000)
        return self._consumer

    def _read(self, tp: TopicPartition, start: int, limit: int, max_records: int) -> tuple[list[Any], int]:
        """Records of ``tp`` in [start, limit) from one poll, and the offset to read from next."""
        if start >= limit:
            return [], start
        consumer = self._reader()
        if self._assigned != tp:
            consumer.assign([tp])
            self._assigned = tp
            self._reader_at = None
        if self._reader_at != start:
            consumer.seek(tp, start)
        polled = consumer.poll(timeout_ms=self.poll_ms, max_records=max_records)
        records = polled.get(tp, [])
        self._reader_at = consumer.position(tp)
        self._highwater = consumer.highwater(tp)
        inside = [r for r in records if r.offset < limit]
        if len(inside) < len(records):
            return inside, limit
        if inside:
            return inside, inside[-1].offset + 1
        # Nothing returned: the reader may still have moved past transaction markers or aborted data.
        at = self._reader_at if self._reader_at is not None else start
        return [], min(max(at, start), limit)
