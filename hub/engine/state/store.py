"""The local state store: one SQLite file per owned source partition, a cache of the changelog.

Why SQLite: it ships with Python, its transactions make a batch of changes and the changelog position
they reach (the checkpoint) land together or not at all, it lives on disk, so the state has no size
cap and no memory cap (the keys held by thousands of filtered subscriptions), and its B-tree answers
"does this subscription hold this key" in microseconds. RocksDB would need a binding we do not ship.

The store is written only after the Kafka transaction that carried the same changes to the changelog
committed, so it is never ahead of the changelog; a worker that dies in between is behind, and the
restore (restore.py) reads the changelog from the checkpoint on. Two writers share a worker's stores: its
main loop and its backfill task (own thread, own producer). Each writes only the subscriptions it
serves, and a writer moves the checkpoint only while the other has no transaction open: the other's
committed but not yet applied entries may lie below it, and a restart must still read them. The
changelog is the truth: a store file lost or stale (its checkpoint past the changelog's end, e.g. the
topic was re-created) is rebuilt.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from hub.core.errors import FatalError
from hub.engine.handover import Backfilling, Handover, PartitionState
from hub.engine.state.changelog import Entry, HandoverEntry, HeldEntry, encode, handover_of, handover_value

# (source partition, subscription, key hash) -> held after the open transaction (True) or released
HeldChanges = dict[tuple[TopicPartition, str, bytes], bool]
# per source partition: the (subscription, key hash) pairs held among the keys of the batch being routed
KnownHeld = dict[TopicPartition, set[tuple[str, bytes]]]
_IN_CHUNK = 400  # parameters per IN list, well under SQLite's limit on bound parameters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handover (sid TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS held (sid TEXT NOT NULL, key BLOB NOT NULL, PRIMARY KEY (sid, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoint (
  id INTEGER PRIMARY KEY CHECK (id = 0), next_offset INTEGER NOT NULL, last_key BLOB
);
"""


class PartitionStore:
    """The state of one source partition, in its own SQLite file.

    ``next_offset``: the changelog offset the store has applied up to (restore reads from there);
    ``last_key``: the message key of the changelog record just below it, when the store wrote it (the
    restore checks it is still there: a store written against an older, re-created topic is rebuilt).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # a crash loses at most what the changelog has
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise FatalError(f"state store {path}: cannot open: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    @property
    def next_offset(self) -> int:
        row = self._db.execute("SELECT next_offset FROM checkpoint WHERE id = 0").fetchone()
        return int(row[0]) if row else 0

    @property
    def last_key(self) -> bytes | None:
        row = self._db.execute("SELECT last_key FROM checkpoint WHERE id = 0").fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def handover(self) -> PartitionState:
        out: PartitionState = {}
        for sid, value in self._db.execute("SELECT sid, value FROM handover"):
            h = handover_of(value)
            if h is not None:
                out[sid] = h
        return out

    def holds(self, sid: str, key: bytes) -> bool:
        return (
            self._db.execute("SELECT 1 FROM held WHERE sid = ? AND key = ?", (sid, key)).fetchone()
            is not None
        )

    def held_among(self, sids: Sequence[str], keys: Sequence[bytes]) -> set[tuple[str, bytes]]:
        """Which of ``keys`` each of ``sids`` holds, read at once: one query per chunk, not per lookup."""
        found: set[tuple[str, bytes]] = set()
        for i in range(0, len(sids), _IN_CHUNK):
            some_sids = sids[i : i + _IN_CHUNK]
            for j in range(0, len(keys), _IN_CHUNK):
                some_keys = keys[j : j + _IN_CHUNK]
                marks = f"{','.join('?' * len(some_sids))}) AND key IN ({','.join('?' * len(some_keys))}"
                # only "?" placeholders are formatted in: the values are bound parameters
                query = f"SELECT sid, key FROM held WHERE sid IN ({marks})"  # noqa: S608
                rows = self._db.execute(query, (*some_sids, *some_keys))
                found.update((str(sid), bytes(key)) for sid, key in rows)
        return found

    def held_count(self, sid: str) -> int:
        return int(self._db.execute("SELECT count(*) FROM held WHERE sid = ?", (sid,)).fetchone()[0])

    def apply(self, entries: Iterable[Entry], next_offset: int | None, last_key: bytes | None = None) -> None:
        """Apply ``entries`` and move the checkpoint to ``next_offset`` (None: leave it), in one SQLite
        transaction."""
        handover_put: list[tuple[str, bytes]] = []
        handover_del: list[tuple[str]] = []
        held_put: list[tuple[str, bytes]] = []
        held_del: list[tuple[str, bytes]] = []
        for entry in entries:
            if isinstance(entry, HandoverEntry):
                if entry.handover is None:
                    handover_del.append((entry.sid,))
                else:
                    handover_put.append((entry.sid, handover_value(entry.handover)))
            elif entry.held:
                held_put.append((entry.sid, entry.key))
            else:
                held_del.append((entry.sid, entry.key))
        db = self._db
        try:
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO handover (sid, value) VALUES (?, ?)", handover_put)
            db.executemany("DELETE FROM handover WHERE sid = ?", handover_del)
            db.executemany("INSERT OR IGNORE INTO held (sid, key) VALUES (?, ?)", held_put)
            db.executemany("DELETE FROM held WHERE sid = ? AND key = ?", held_del)
            if next_offset is not None:
                db.execute(
                    "INSERT INTO checkpoint (id, next_offset, last_key) VALUES (0, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET "
                    "last_key = CASE WHEN excluded.next_offset > next_offset "
                    "THEN excluded.last_key ELSE last_key END, "
                    "next_offset = max(next_offset, excluded.next_offset)",
                    (next_offset, last_key),
                )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise FatalError(f"state store {self.path}: write failed: {exc}") from exc

    def wipe(self) -> None:
        """Forget everything (the store is rebuilt from the changelog's beginning)."""
        self._db.executescript("DELETE FROM handover; DELETE FROM held; DELETE FROM checkpoint;")


class StateStore:
    """The stores of the source partitions one worker owns, and the state changes of a transaction.

    Args:
        directory: where the store files live (one per source partition: ``<topic>-<partition>.sqlite``).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.stores: dict[TopicPartition, PartitionStore] = {}
        self._handover: dict[TopicPartition, PartitionState] = {}  # cache of the stores' handover tables
        # The main loop and the backfill task write from two threads: one at a time in SQLite and here.
        self.lock = threading.RLock()
        self._open: set[str] = set()  # writers with a transaction open (see begin)

    # -- ownership -------------------------------------------------------------------------------
    def open(self, tp: TopicPartition) -> PartitionStore:
        store = self.stores.get(tp)
        if store is None:
            store = self.stores[tp] = PartitionStore(self.directory / f"{tp.topic}-{tp.partition}.sqlite")
        return store

    def loaded(self, tp: TopicPartition) -> None:
        """``tp`` is restored: cache its handover state."""
        self._handover[tp] = self.stores[tp].handover()

    def close(self, tps: Iterable[TopicPartition]) -> None:
        with self.lock:
            for tp in tps:
                store = self.stores.pop(tp, None)
                self._handover.pop(tp, None)
                if store is not None:
                    store.close()

    def close_all(self) -> None:
        self.close(list(self.stores))

    # -- reading ---------------------------------------------------------------------------------
    def handover(self, tp: TopicPartition) -> PartitionState:
        with self.lock:
            return dict(self._handover.get(tp, {}))

    def holds(
        self,
        tp: TopicPartition,
        sid: str,
        key: bytes,
        pending: Mapping[Any, bool],
        known: set[tuple[str, bytes]] | None = None,
    ) -> bool:
        """Whether ``sid`` holds ``key`` on ``tp``, counting the changes of the open transaction.

        ``known``: what :meth:`held_among` read for the batch's keys on ``tp`` (saves the lookup).
        """
        changed = pending.get((tp, sid, key))
        if changed is not None:
            return changed
        if known is not None:
            return (sid, key) in known
        with self.lock:
            store = self.stores.get(tp)
            return store is not None and store.holds(sid, key)

    def held_among(
        self, tp: TopicPartition, sids: Sequence[str], keys: Sequence[bytes]
    ) -> set[tuple[str, bytes]]:
        """Which of ``keys`` each of ``sids`` holds on ``tp`` in the committed state (see ``holds``)."""
        with self.lock:
            store = self.stores.get(tp)
            return store.held_among(sids, keys) if store is not None else set()

    # -- changing --------------------------------------------------------------------------------
    def changes(
        self,
        states: Mapping[TopicPartition, PartitionState],
        held: HeldChanges | None = None,
        *,
        partial: bool = False,
    ) -> list[Entry]:
        """The changelog entries that take the committed state to ``states`` and ``held``.

        The main loop passes whole partition states; the position of a backfill in them is not its own
        (the backfill task moves it), so a backfill that only moved on is left out. ``partial``: the
        backfill task's states, holding only the subscriptions it serves.
        """
        out: list[Entry] = []
        with self.lock:
            for tp, state in states.items():
                if tp not in self.stores:
                    continue  # lost meanwhile: the transaction will not commit its offsets either
                before = self._handover.get(tp, {})
                for sid in sorted(set(state) if partial else set(before) | set(state)):
                    old, new = before.get(sid), state.get(sid)
                    if old == new or (not partial and _same_backfill(old, new)):
                        continue
                    out.append(HandoverEntry(tp, sid, new))
            for (tp, sid, key), is_held in (held or {}).items():
                if tp in self.stores:
                    out.append(HeldEntry(tp, sid, key, is_held))
        return out

    def begin(self, writer: str) -> None:
        """``writer`` opens a transaction: from now on its entries may lie below another's checkpoint."""
        with self.lock:
            self._open.add(writer)

    def end(self, writer: str) -> None:
        """``writer``'s transaction is over (applied, or aborted)."""
        with self.lock:
            self._open.discard(writer)

    def apply(self, sent: list[tuple[Entry, Any]], writer: str = "") -> None:
        """After the transaction committed: write its entries to the stores with their checkpoints.

        The checkpoint stays where it is while another writer has a transaction open (that one's
        entries may be committed below this one's and not applied yet): a restart reads a little more.
        """
        by_tp: dict[TopicPartition, tuple[list[Entry], int, Entry]] = {}
        for entry, future in sent:
            offset = int(future.get(timeout=30).offset)  # done: the commit flushed every send
            entries, last, last_entry = by_tp.get(entry.tp, ([], -1, entry))
            entries.append(entry)
            by_tp[entry.tp] = (entries, offset, entry) if offset > last else (entries, last, last_entry)
        with self.lock:
            alone = not (self._open - {writer})
            for tp, (entries, last, last_entry) in by_tp.items():
                store = self.stores.get(tp)
                if store is None:
                    continue
                if alone:
                    store.apply(entries, last + 1, encode(last_entry)[0])
                else:
                    store.apply(entries, None)
                cache = self._handover.setdefault(tp, {})
                for entry in entries:
                    if isinstance(entry, HandoverEntry):
                        if entry.handover is None:
                            cache.pop(entry.sid, None)
                        else:
                            cache[entry.sid] = entry.handover


def _same_backfill(old: Handover | None, new: Handover | None) -> bool:
    """Both the same backfill (the same snapshot end), perhaps at other positions."""
    return (
        isinstance(old, Backfilling) and isinstance(new, Backfilling) and old.snapshot_end == new.snapshot_end
    )
