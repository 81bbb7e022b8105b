"""The registry operations (register, look up, compatibility levels) over an abstract append-only log.

A store subclass says only how the log is read (``_refresh``) and appended to (``_commit``); every rule of
the registry lives here, so the in-memory and the Kafka-backed stores cannot disagree.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType

from hub.core.log import get_logger
from hub.core.registry import compatibility
from hub.core.registry.errors import (
    InvalidSchema,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectNotFound,
)
from hub.core.registry.schema import AvroSchema, normalize
from hub.registry.state import Record, RegistryState, SchemaVersion, config_record, schema_record

log = get_logger("registry.store")  # the stores' logger: the events keep the name they had

# Given the complete registry state, the records to append (none when there is nothing left to do).
RecordsToAppend = Callable[[RegistryState], list[Record]]


def _check_subject(subject: str) -> None:
    if not isinstance(subject, str) or not subject or len(subject) > 255 or any(ord(c) < 32 for c in subject):
        raise InvalidSchema(f"subject {subject!r} must be 1 to 255 printable characters")


class BaseSchemaStore(ABC):
    """The registry operations, over a log that subclasses read (``_refresh``) and append to (``_commit``).

    Every method is thread-safe: the built-in server calls them from many request threads.
    """

    def __init__(self, default_level: str = compatibility.DEFAULT_LEVEL) -> None:
        self._state = RegistryState(default_level)
        self._lock = threading.RLock()  # guards the state (and, in SchemaStore, the consumer)
        self._write_lock = threading.Lock()  # one writer per process: threads must not fence each other

    @abstractmethod
    def _refresh(self) -> None:
        """Bring the state up to the current end of the log."""

    @abstractmethod
    def _commit(self, records_for: RecordsToAppend) -> bool:
        """Catch up, call ``records_for`` on the whole state, append its records atomically, read them back.

        Returns whether anything was written (``records_for`` may find there is nothing left to do).
        """

    def start(self) -> None:  # noqa: B027 - a hook: the in-memory store has nothing to open
        """Open the log and load the state. Stores are usable after this."""

    def stop(self) -> None:  # noqa: B027 - a hook: the in-memory store has nothing to close
        """Release connections. Safe to call twice."""

    def close(self) -> None:
        """Same as ``stop``."""
        self.stop()

    def __enter__(self) -> BaseSchemaStore:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- writes -------------------------------------------------------------------------------

    def register(self, subject: str, schema: AvroSchema) -> SchemaVersion:
        """Register ``schema`` under ``subject``; idempotent (an identical schema returns its version).

        Raises:
            InvalidSchema: not valid Avro (or a bad subject name).
            IncompatibleSchema: refused under the subject's level; ``.messages`` name the fields.
            RegistryUnavailable: the log could not be read or written in time.
        """
        _check_subject(subject)
        text = normalize(schema)
        self._refresh()
        with self._lock:
            found = self._state.find(subject, text)
            if found is None:
                self._state.plan_registration(subject, text)  # refuse early, before any write
        if found is not None:
            return found

        def registration(state: RegistryState) -> list[Record]:
            planned = state.plan_registration(subject, text)
            return [] if planned is None else [schema_record(planned)]

        wrote = self._commit(registration)
        with self._lock:
            found = self._state.find(subject, text)
        if found is None:  # our record was read back but not accepted: only a foreign writer can cause this
            raise RegistryUnavailable(f'registration of a schema under subject "{subject}" was not accepted')
        if wrote:
            log.info("schema_registered", subject=subject, version=found.version, id=found.id)
        return found

    def register_many(self, items: Sequence[tuple[str, AvroSchema]]) -> list[SchemaVersion]:
        """Register each (subject, schema) of ``items`` in ONE append: one Kafka transaction for a whole
        apply instead of one per subject (12,600 subjects in a Pudong-size config). All or nothing.

        Raises:
            InvalidSchema: a schema is not valid Avro, or a subject is named twice.
            IncompatibleSchema: one is refused under its subject's level (nothing is written).
            RegistryUnavailable: the log could not be read or written in time.
        """
        texts = [(subject, normalize(schema)) for subject, schema in items]
        for subject, _ in texts:
            _check_subject(subject)
        if len({subject for subject, _ in texts}) != len(texts):
            raise InvalidSchema("register_many: a subject is named twice")
        self._refresh()
        with self._lock:
            for subject, text in texts:
                self._state.plan_registration(subject, text)  # refuse early, before any write

        def registrations(state: RegistryState) -> list[Record]:
            records: list[Record] = []
            new_ids: dict[str, int] = {}  # texts new to the registry get ids in order, once each
            for subject, text in texts:
                planned = state.plan_registration(subject, text)
                if planned is None:
                    continue
                if state.id_of(text) is None:
                    planned = replace(planned, id=new_ids.setdefault(text, state.max_id + 1 + len(new_ids)))
                records.append(schema_record(planned))
            return records

        wrote = self._commit(registrations)
        with self._lock:
            found = [self._state.find(subject, text) for subject, text in texts]
        missing = [subject for (subject, _), version in zip(texts, found, strict=True) if version is None]
        if missing:
            raise RegistryUnavailable(f"registrations under {missing[:3]} ... were not accepted")
        if wrote:
            log.info("schemas_registered", subjects=len(texts))
        return [version for version in found if version is not None]

    def set_level(self, level: str, subject: str | None = None) -> str:
        """Set the compatibility level globally (``subject=None``) or for one subject; return it."""
        level = compatibility.validate_level(level)
        if subject is not None:
            _check_subject(subject)
        self._commit(lambda _state: [config_record(level, subject)])
        log.info("compatibility_set", subject=subject, compatibility=level)
        return level

    def delete_level(self, subject: str) -> str | None:
        """Remove the subject's own level (it falls back to the global one); return the removed level."""
        previous = self.get_level(subject)
        if previous is not None:
            self._commit(lambda _state: [config_record(None, subject)])
        return previous

    # --- reads --------------------------------------------------------------------------------

    def schema(self, schema_id: int) -> str:
        """The canonical text of a schema id (immutable, so no catch-up unless it is unknown here).

        Raises:
            SchemaNotFound: no such id.
        """
        with self._lock:
            text = self._state.schema_by_id(schema_id)
        if text is None:
            self._refresh()  # maybe another process registered it a moment ago
            with self._lock:
                text = self._state.schema_by_id(schema_id)
        if text is None:
            raise SchemaNotFound(f"schema id {schema_id} not found")
        return text

    def usages(self, schema_id: int) -> list[SchemaVersion]:
        """Every subject version that uses ``schema_id``."""
        self.schema(schema_id)
        self._refresh()
        with self._lock:
            return self._state.usages(schema_id)

    def subjects(self) -> list[str]:
        """All subjects, sorted."""
        self._refresh()
        with self._lock:
            return self._state.subjects()

    def versions(self, subject: str) -> list[int]:
        """The versions of ``subject``, ascending.

        Raises:
            SubjectNotFound: the subject is unknown.
        """
        self._refresh()
        with self._lock:
            found = self._state.versions(subject)
        if not found:
            raise SubjectNotFound(f'subject "{subject}" not found')
        return found

    def get(self, subject: str, version: int | None = None) -> SchemaVersion:
        """One version of ``subject``; None means the latest.

        Raises:
            SubjectNotFound, VersionNotFound
        """
        self._refresh()
        with self._lock:
            return self._state.version(subject, version)

    def lookup(self, subject: str, schema: AvroSchema) -> SchemaVersion:
        """The version of ``subject`` holding exactly ``schema``.

        Raises:
            SubjectNotFound: the subject is unknown.
            SchemaNotFound: the subject exists but does not hold this schema.
        """
        text = normalize(schema)
        self._refresh()
        with self._lock:
            if not self._state.versions(subject):
                raise SubjectNotFound(f'subject "{subject}" not found')
            found = self._state.find(subject, text)
        if found is None:
            raise SchemaNotFound(f'schema not found under subject "{subject}"')
        return found

    def test_compatibility(
        self, subject: str, schema: AvroSchema, version: int | str | None = None
    ) -> list[str]:
        """Problems ``schema`` has against a version of ``subject``.

        ``version``: a number, None for the latest, or ``"all"`` to check as registering would.

        A subject with no versions accepts anything.
        """
        text = normalize(schema)
        self._refresh()
        with self._lock:
            if not self._state.versions(subject) and (version is None or version == "all"):
                return []
            return self._state.compatibility_problems(subject, text, version)

    def get_level(self, subject: str | None = None) -> str | None:
        """The configured level of ``subject`` (global with None); None when it has none of its own."""
        self._refresh()
        with self._lock:
            return self._state.level(subject)

    def effective_level(self, subject: str | None = None) -> str:
        """The level that applies to ``subject`` (or the global one, with None)."""
        self._refresh()
        with self._lock:
            if subject is None:
                return self._state.level() or self._state.default_level
            return self._state.effective_level(subject)
