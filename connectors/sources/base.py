"""What every source is: a class with ``run()``/``stop()`` handing batches of captured changes to the runtime.

A source captures; the runtime (``connectors.runtime.source_loop``) does the rest: it validates each change
against its resource schema, builds and encodes the change events, and publishes events, dead letters and
the source's new position in ONE Kafka transaction. Because the position travels with the events, a
crash anywhere neither loses nor repeats a change: on restart the source resumes after the last position
that committed.

Two shapes of source fit this:

- polling sources (``PollingSource``: SQL trigger capture, outbox) read a log in order and publish each
  batch with the log position after it;
- push sources (HTTP) publish synchronously from their request handler and answer with the outcome.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.errors import InstallError
from hub.core.envelope import Op
from hub.core.errors import ConfigError, InvalidRecord

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

Position = Any
"""A source position: any JSON value (a dict for the SQL sources, an int for HTTP push)."""


class SourceConfigBase(BaseModel):
    """Settings every source has. Concrete sources add theirs (``SqlTriggerSourceConfig`` ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="unique within the sidecar; the key of its position on xhub.pos.<dept>")
    type: str
    system: str | None = Field(
        default=None, description="business system the changes come from (source.system); default: name"
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="most changes per Kafka transaction")
    max_record_bytes: int = Field(
        default=512 * 1024, ge=1024, le=900 * 1024, description="larger records are dead-lettered (oversize)"
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f'source name "{value}" must be lowercase letters, digits, "-" or "_"')
        return value

    @property
    def system_name(self) -> str:
        return self.system or self.name

    def resource_codes(self) -> list[str]:
        """Catalog codes this source publishes."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """What a source needs to know of a catalog resource it publishes.

    Attributes:
        code: catalog code, e.g. ``PD-POP-0001``.
        schema: the resource's Avro record schema.
        key_field: the business-key field.
        key_format: ``citizen_id``, ``credit_code`` or ``any``.
        checks: further fields to check as citizen IDs or credit codes.
        terms_version: a linked resource's district policy version in the terms the city validated
            against (``linked_from.terms``): a hub link warns when deliveries come under another.
    """

    code: str
    schema: dict[str, Any]
    key_field: str
    key_format: Literal["citizen_id", "credit_code", "any"] = "any"
    checks: dict[str, Literal["citizen_id", "credit_code"]] = field(default_factory=dict)
    terms_version: str | None = None

    @property
    def field_names(self) -> list[str]:
        return [str(f["name"]) for f in self.schema["fields"]]

    def required_fields(self) -> list[str]:
        """Fields that have no default and are not nullable: a table must provide them."""
        out = []
        for f in self.schema["fields"]:
            kind = f["type"]
            nullable = kind == "null" or (isinstance(kind, list) and "null" in kind)
            if "default" not in f and not nullable:
                out.append(str(f["name"]))
        return out

    def column_pairs(
        self, present: set[str], columns: Mapping[str, str], key_column: str, where: str
    ) -> list[tuple[str, str]]:
        """(field, column) of every schema field a table has, given its ``present`` columns.

        ``columns`` maps fields to columns where the names differ. A required field, a field mapped on
        purpose, and the business-key column must be there: the error, starting with ``where``, names
        each one that is not.
        """
        pairs: list[tuple[str, str]] = []
        missing: list[str] = []
        required = set(self.required_fields())
        for name in self.field_names:
            column = columns.get(name, name)
            if column in present:
                pairs.append((name, column))
            elif name in required or name in columns:
                missing.append(f'"{column}" (field {name})')
        if key_column not in present:
            missing.append(f'"{key_column}" (business key)')
        if missing:
            raise InstallError(f"{where} has no column {', '.join(missing)}")
        return pairs


@dataclass(slots=True)
class Captured:
    """One captured change, before validation.

    Attributes:
        resource: catalog code of the record.
        op: c, u, d or r.
        seq: per-key sequence, monotonic at the source (a change-log id, an outbox id, a counter).
        commit_ts_ms: when the change committed at the source (or was received).
        origin: where it came from, for dead letters: ``xhub_changelog#42``, ``POST /records/X#3``.
        data: the record as raw JSON bytes (validated as received) or as a decoded dict; None on delete.
        key: the business key when the source knows it apart from ``data`` (always, for deletes).
        rejected: set when the source already knows the change is bad (it is dead-lettered as is).
        original: the bytes the change arrived as, when the source has them (a hub link's Kafka value):
            a dead letter keeps these rather than the decoded record.
        headers: Kafka headers the published event carries on (a hub link's provenance).
    """

    resource: str
    op: Op
    seq: int
    commit_ts_ms: int
    origin: str
    data: bytes | dict[str, Any] | None = None
    key: str | None = None
    rejected: InvalidRecord | None = None
    original: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class Batch:
    """Changes to publish together, and the source position right after the last of them."""

    changes: list[Captured]
    position: Position


@dataclass(slots=True, frozen=True)
class Rejection:
    """A change that failed validation and went to the dead-letter topic instead."""

    index: int
    reason: str
    field: str | None
    detail: str


@dataclass(slots=True)
class PublishResult:
    """What became of a batch: how many events were published, which changes were dead-lettered."""

    published: int = 0
    rejected: list[Rejection] = field(default_factory=list)


class SourceContext(Protocol):
    """What the runtime offers a running source."""

    def committed_position(self) -> Position | None:
        """The last position committed to Kafka (None on first start); reconnects first if needed."""

    def publish(self, batch: Batch) -> PublishResult:
        """Validate, encode and publish ``batch`` with its position in one Kafka transaction.

        Raises:
            RetriableError: the transaction did not commit; nothing of it is visible. Resume from
                ``committed_position()``.
            FatalError: this source was fenced by a newer sidecar.
        """


class Source(ABC):
    """A source of changes of one department system.

    Subclasses set ``kind`` and take their pydantic config in ``__init__``. The runtime calls ``bind``,
    then ``run`` in a thread of its own; ``run`` returns after ``stop`` (finishing the batch in hand) or
    raises ``RetriableError`` to be run again after a backoff.
    """

    kind: str = "source"

    def __init__(
        self,
        config: SourceConfigBase,
        *,
        resources: Mapping[str, ResourceSpec],
        base_dir: Path | None = None,
    ) -> None:
        missing = [code for code in config.resource_codes() if code not in resources]
        if missing:
            raise ConfigError(f'source "{config.name}": resource {", ".join(missing)} is not in the catalog')
        self.config = config
        self.specs = {code: resources[code] for code in config.resource_codes()}
        self.base_dir = base_dir or Path.cwd()
        self._stopping = threading.Event()
        self._snapshot_requested = threading.Event()
        self._context: SourceContext | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def resources(self) -> list[str]:
        """Catalog codes this source publishes."""
        return self.config.resource_codes()

    @property
    def supports_snapshot(self) -> bool:
        """True if the source can publish the current table as op=r events."""
        return False

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    @property
    def context(self) -> SourceContext:
        if self._context is None:
            raise RuntimeError(f'source "{self.name}" is not bound to a runtime')
        return self._context

    def bind(self, context: SourceContext) -> None:
        """Attach the runtime's publishing context. Called once, before ``run``."""
        self._context = context

    @abstractmethod
    def run(self) -> None:
        """Capture and publish until ``stop()``; raise RetriableError on an outage."""

    def stop(self) -> None:
        """Ask ``run`` to return after the batch in hand."""
        self._stopping.set()

    def install(self) -> list[str]:
        """Prepare the department system (tables, triggers); return one line per object, what was done."""
        return []

    def uninstall(self) -> list[str]:
        """Remove what ``install`` made that holds resources on the department system (replication slots);
        return one line per object removed."""
        return []

    def health(self) -> dict[str, Any]:
        """Source-specific facts for /healthz (e.g. the WAL a replication slot holds back); may hold
        ``warnings``, a list of texts."""
        return {}

    def request_snapshot(self) -> bool:
        """Ask for a fresh snapshot (op=r of every row); False if this source cannot take one."""
        if not self.supports_snapshot:
            return False
        self._snapshot_requested.set()
        return True


@dataclass(slots=True)
class Poll:
    """The outcome of one ``PollingSource.poll``.

    Attributes:
        batch: what to publish (None: nothing; a batch without changes persists a position only).
        position: where the next poll starts (the batch's position, or further over empty ground).
        more: True when the source has more ready now (poll again without waiting).
    """

    batch: Batch | None
    position: Position
    more: bool = False


class PollingSource(Source):
    """A source that reads a log in order: ``open``, then ``poll`` again and again, then ``close``."""

    poll_interval_s: float = 0.2
    polls: int = 0
    """Polls done since start (for health checks and tests: the source has read its system)."""

    @property
    def supports_snapshot(self) -> bool:
        return False

    @abstractmethod
    def open(self) -> None:
        """Connect to the source system. Raise SourceUnavailable when it does not answer."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; never raises."""

    @abstractmethod
    def poll(self, position: Position | None, limit: int, *, start_snapshot: bool) -> Poll:
        """Read up to ``limit`` changes after ``position``.

        Args:
            position: the last committed (or skipped-over) position; None on the very first start.
            limit: most changes to return.
            start_snapshot: begin a fresh snapshot with this batch (requested by the operator).
        """

    def after_commit(self, position: Position) -> None:
        """Called after a batch committed (housekeeping such as pruning the change log)."""

    def run(self) -> None:
        context = self.context
        self.open()
        try:
            position = context.committed_position()
            while not self._stopping.is_set():
                snapshot = self._snapshot_requested.is_set()
                polled = self.poll(position, self.config.batch_size, start_snapshot=snapshot)
                if polled.batch is not None:
                    context.publish(polled.batch)
                    self.after_commit(polled.batch.position)
                if snapshot:
                    # Only now: a failed publish leaves the request standing for the retry.
                    self._snapshot_requested.clear()
                position = polled.position
                self.polls += 1
                if not polled.more:
                    self._stopping.wait(self.poll_interval_s)
        finally:
            self.close()


SourceType = Literal["sql_trigger", "pg_logical", "outbox", "http_push", "hub_link"]
