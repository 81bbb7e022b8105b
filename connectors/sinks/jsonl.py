"""JsonlSink: append one JSON object per delivery to a file (shape in ``json_format``).

Guarantee: **each delivery appears exactly once in the file**, provided this sink is the file's only
writer. Per batch the lines are appended and fsynced, then the offsets file (``<path>.offsets.json``:
the next offset per partition and the file's committed length) is replaced atomically (write a temp
file, fsync, rename, fsync the directory). On open, bytes past the committed length, written by a batch
whose offsets never landed, are cut off; the sink loop then seeks to the stored offsets and those
deliveries are written again, once. Deliveries below the stored offsets are skipped.

Lines are a change log, not a state: every delivery is written, including older-seq ones, so a
reader applying them must keep the newest ``seq`` per ``key``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.sinks.base import Delivery, PartitionProgress, Sink, TopicPartitionKey, progress_of
from connectors.sinks.errors import SinkConfigError, SinkUnavailable
from connectors.sinks.json_format import delivery_lines
from hub.core.log import get_logger

_FORMAT_VERSION = 1


class JsonlSinkConfig(BaseModel):
    """Config of a ``JsonlSink`` (``type: jsonl`` in the sidecar's sink list)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["jsonl"] = "jsonl"
    path: Path = Field(description="the JSON-lines file to append to (created with its folder)")
    offsets_path: Path | None = Field(default=None, description="default: <path>.offsets.json")
    fsync: bool = Field(default=True, description="fsync the file after every batch (off only for tests)")


class JsonlSink(Sink):
    """Exactly-once JSON lines in a local file (see the module docstring)."""

    stores_offsets = True

    def __init__(self, config: JsonlSinkConfig) -> None:
        super().__init__()
        self.config = config
        self.path = config.path
        self.offsets_path = config.offsets_path or config.path.with_name(config.path.name + ".offsets.json")
        self._file: IO[bytes] | None = None
        self._size = 0
        self._offsets: dict[TopicPartitionKey, int] = {}
        self._log = get_logger("sink.jsonl", path=str(self.path))

    def open(self) -> None:
        """Load the offsets, cut off uncommitted bytes and open the file for appending.

        Raises:
            SinkConfigError: the offsets file is not ours (unreadable JSON or another format).
            SinkUnavailable: the file system refused (permissions, disk).
        """
        if self._file is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            state = self._read_state()
            actual = self.path.stat().st_size if self.path.exists() else 0
            if state is None:
                self._size = actual
                if actual:
                    self._log.warning("jsonl_offsets_missing", offsets=str(self.offsets_path), bytes=actual)
            else:
                self._size, self._offsets = state
                if actual > self._size:
                    os.truncate(self.path, self._size)
                    self._log.info("jsonl_uncommitted_cut", bytes=actual - self._size)
                elif actual < self._size:
                    self._log.warning("jsonl_shorter_than_committed", bytes=actual, committed=self._size)
                    self._size = actual
            self._file = self.path.open("ab")
        except OSError as exc:
            raise SinkUnavailable(f"JSON-lines sink {self.path}: {exc.strerror or exc}") from exc

    def _read_state(self) -> tuple[int, dict[TopicPartitionKey, int]] | None:
        try:
            text = self.offsets_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            state: dict[str, Any] = json.loads(text)
            if state.get("version") != _FORMAT_VERSION:
                raise ValueError(f"version {state.get('version')!r}")  # noqa: TRY301 - one message for both
            offsets = {
                (str(o["topic"]), int(o["partition"])): int(o["next_offset"]) for o in state["offsets"]
            }
            return int(state["size"]), offsets
        except (ValueError, KeyError, TypeError) as exc:
            raise SinkConfigError(
                f"offsets file {self.offsets_path} is not a JSON-lines sink state: {exc}"
            ) from exc

    def committed_offsets(self, partitions: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """The stored next offsets of ``partitions`` (missing: nothing consumed yet).

        This opens the sink, which cuts uncommitted bytes off the file: only the file's writer may call
        it; anyone else reads the offsets file.
        """
        self.open()
        return {(t, p): self._offsets[(t, p)] for t, p in partitions if (t, p) in self._offsets}

    def write(self, batch: Sequence[Delivery], progress: Sequence[PartitionProgress] | None = None) -> None:
        """Append the deliveries not yet in the file, fsync, then store the offsets atomically.

        Raises:
            SinkUnavailable: the write failed; the file is cut back to its committed length.
        """
        spans = list(progress) if progress is not None else progress_of(batch)
        if not spans:
            return
        self.open()
        assert self._file is not None
        offsets = self._offsets
        fresh = [d for d in batch if d.offset >= offsets.get((d.topic, d.partition), -1)]
        data = delivery_lines(fresh).encode("utf-8")
        try:
            if data:
                self._file.write(data)
                self._file.flush()
                if self.config.fsync:
                    os.fsync(self._file.fileno())
            updated = dict(offsets)
            for span in spans:
                tp = (span.topic, span.partition)
                updated[tp] = max(updated.get(tp, 0), span.next_offset)
            self._store(self._size + len(data), updated)
        except OSError as exc:
            self._rewind()
            raise SinkUnavailable(f"JSON-lines sink {self.path}: {exc.strerror or exc}") from exc
        self._size += len(data)
        self._offsets = updated

    def _store(self, size: int, offsets: dict[TopicPartitionKey, int]) -> None:
        state = {
            "version": _FORMAT_VERSION,
            "size": size,
            "offsets": [
                {"topic": t, "partition": p, "next_offset": n} for (t, p), n in sorted(offsets.items())
            ],
        }
        tmp = self.offsets_path.with_name(self.offsets_path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            json.dump(state, out)
            out.flush()
            if self.config.fsync:
                os.fsync(out.fileno())
        os.replace(tmp, self.offsets_path)
        if self.config.fsync:
            # After the rename the batch is committed; a failing directory fsync must not make the
            # caller cut the file back, so it is only best effort.
            with contextlib.suppress(OSError):
                folder = os.open(self.offsets_path.parent, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)

    def _rewind(self) -> None:
        """Cut a half-written batch off, so a retry does not append after a torn line."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            os.truncate(self.path, self._size)

    def flush(self) -> None:
        """Every write is already durable."""

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
