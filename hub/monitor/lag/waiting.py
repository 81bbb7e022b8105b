"""What waits in each partition: the data records after a group's position, read one by one.

Transactional writers leave a commit marker per transaction in the log and aborted records stay there too;
neither is lag, so the waiting records are counted rather than taken as end minus committed offsets.
Counting goes on from where the last measurement stopped while the position stays put, and stops at a
budget per partition: beyond it offsets estimate the rest.

Reading needs READ on the topic; an identity without it (the operator: delivery and source topics carry
personal data) gets no scan for that topic, so its lag comes from offsets alone and its age stays unknown.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import TopicAuthorizationFailedError

from hub.core.log import get_logger
from hub.monitor.lag.commit_time import CommitTimes

log = get_logger("monitor.lag")


@dataclass(frozen=True, slots=True)
class Waiting:
    """The first record not yet consumed."""

    offset: int
    timestamp_ms: int | None
    commit_ms: int | None


@dataclass(slots=True)
class Scan:
    """What has been read of one partition from one position: it only grows while the position stays."""

    first: Waiting | None = None  # the first data record at or after the position
    counted_to: int = 0  # the next offset to read
    count: int = 0  # data records in [position, counted_to)
    capped: bool = False  # stopped counting at the budget; the rest is estimated from offsets
    limit: int = 1  # records counted one by one before the rest is estimated


class WaitingScanner:
    """Reads the waiting records of many partitions with one consumer, remembering what it has read.

    Args:
        reader: a consumer without a group, used only here (it is assigned and sought at will).
        commit_times: reads the source commit time of the first waiting record.
        read_timeout: seconds to spend reading per round.
        count_limit: records counted one by one per partition; beyond, offsets estimate the rest.
    """

    def __init__(
        self, reader: KafkaConsumer, commit_times: CommitTimes, *, read_timeout: float, count_limit: int
    ) -> None:
        self._reader = reader
        self._commit_times = commit_times
        self.read_timeout = read_timeout
        self.count_limit = count_limit
        self._scans: dict[tuple[TopicPartition, int], Scan] = {}
        # Topics the broker refused to let us read: not asked again while this scanner lives (a refusal
        # makes every poll of the consumer raise, so each one would cost a round of its own).
        self.refused: set[str] = set()

    def scan(
        self, needs: set[tuple[TopicPartition, int]], ends: Mapping[TopicPartition, int]
    ) -> dict[tuple[TopicPartition, int], Scan]:
        """Read on from where the last measurement stopped, per (partition, position), up to the end."""
        scans: dict[tuple[TopicPartition, int], Scan] = {}
        todo: list[tuple[TopicPartition, int]] = []
        for tp, position in sorted(needs):
            if tp.topic in self.refused:
                continue
            scan = self._scans.get((tp, position))
            if scan is None:
                # A backlog longer than count_limit is estimated from offsets at once: only its first
                # record is read (for the age). A consumer working through it moves on every refresh, and
                # counting it again each time would read the whole backlog alongside the consumer.
                gap = ends.get(tp, 0) - position
                scan = Scan(counted_to=position, limit=self.count_limit if gap <= self.count_limit else 1)
            scans[(tp, position)] = scan
            if scan.counted_to < ends.get(tp, 0) and not scan.capped:
                todo.append((tp, position))
        self._scans = scans  # forget the positions no group is at any more
        # One position per partition per round (two hubs reading one source topic need two rounds).
        while todo:
            round_: dict[TopicPartition, Scan] = {}
            rest: list[tuple[TopicPartition, int]] = []
            for tp, position in todo:
                if tp in round_:
                    rest.append((tp, position))
                else:
                    round_[tp] = scans[(tp, position)]
            self._read_round(round_, ends)
            todo = rest
        return {key: scan for key, scan in scans.items() if key[0].topic not in self.refused}

    def _read_round(self, round_: dict[TopicPartition, Scan], ends: Mapping[TopicPartition, int]) -> None:
        reader = self._reader
        reader.assign(list(round_))
        for tp, scan in round_.items():
            reader.seek(tp, scan.counted_to)
        open_ = set(round_)
        deadline = time.monotonic() + self.read_timeout
        while open_ and time.monotonic() < deadline:
            batch = self._poll(open_)
            for tp, records in batch.items():
                scan = round_[tp]
                if tp not in open_:
                    continue
                for rec in records:
                    if rec.offset < scan.counted_to or rec.offset >= ends.get(tp, 0):
                        continue
                    if scan.count >= scan.limit:
                        break  # the rest is estimated from offsets
                    if scan.first is None:
                        stamp = rec.timestamp if rec.timestamp is not None and rec.timestamp >= 0 else None
                        scan.first = Waiting(rec.offset, stamp, self._commit_times.of(tp.topic, rec.value))
                    scan.count += 1
                    scan.counted_to = rec.offset + 1
            for tp in list(open_):
                scan = round_[tp]
                scan.capped = scan.count >= scan.limit
                if not scan.capped:
                    # The position also moves past commit markers and aborted records, which are not lag.
                    scan.counted_to = max(scan.counted_to, min(reader.position(tp), ends.get(tp, 0)))
                if scan.counted_to >= ends.get(tp, 0) or scan.capped:
                    open_.discard(tp)
                    reader.pause(tp)
        if open_:
            log.warning(
                "lag_read_timeout",
                partitions=sorted(f"{tp.topic}-{tp.partition}@{round_[tp].counted_to}" for tp in open_),
                ends=sorted(f"{tp.topic}-{tp.partition}@{ends.get(tp, 0)}" for tp in open_),
                seconds=self.read_timeout,
            )
        reader.unsubscribe()  # also forgets the pauses

    def _poll(self, open_: set[TopicPartition]) -> dict[TopicPartition, list[Any]]:
        """One poll; a topic the broker refuses to let us read is taken out of ``open_`` (nothing read)."""
        try:
            return dict(self._reader.poll(timeout_ms=100))
        except TopicAuthorizationFailedError as exc:
            self._refuse(exc, open_)
            return {}

    def _refuse(self, exc: TopicAuthorizationFailedError, open_: set[TopicPartition]) -> None:
        """Stop reading the topics the broker refused (their lag then comes from offsets alone)."""
        refused = _refused_topics(exc, {tp.topic for tp in open_})
        if not refused <= self.refused:
            log.info("lag_read_refused", topics=sorted(refused - self.refused))
        self.refused |= refused
        for tp in [tp for tp in open_ if tp.topic in refused]:
            open_.discard(tp)
            self._reader.pause(tp)

    def close(self) -> None:
        """Close the reader."""
        self._reader.close()


def _refused_topics(exc: TopicAuthorizationFailedError, reading: set[str]) -> set[str]:
    """The topics a refused fetch names (kafka-python passes them as the error's argument); every topic
    being read when it names none (a later answer for a topic already refused names it again: no more)."""
    named = exc.args[0] if exc.args else None
    topics = {t for t in named if isinstance(t, str)} if isinstance(named, (set, frozenset)) else set()
    return topics or set(reading)
