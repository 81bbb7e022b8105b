"""Schema compatibility by Avro's schema-resolution rules (reader vs writer), as Confluent checks it.

BACKWARD means the new schema, as a reader, can read data written with the old one; FORWARD means the old
schema can read data written with the new one; FULL is both. The ``_TRANSITIVE`` levels check against every
existing version instead of only the latest. Every message names the field and describes the change from the
old schema to the new one, e.g. ``field "phone" of record gov.xhub.Person: added without a default (a
BACKWARD reader cannot read old data)``.

Pure logic: no I/O, no registry state.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.core.registry.errors import InvalidCompatibilityLevel
from hub.core.registry.schema import AvroSchema, AvroType, parse

NONE = "NONE"
BACKWARD = "BACKWARD"
BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
FORWARD = "FORWARD"
FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
FULL = "FULL"
FULL_TRANSITIVE = "FULL_TRANSITIVE"
LEVELS = (NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE)
DEFAULT_LEVEL = BACKWARD

# writer type -> reader types that can read it (Avro's promotions)
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_NAMED = frozenset({"record", "enum", "fixed"})


def validate_level(level: str) -> str:
    """Return ``level`` upper-cased; raise InvalidCompatibilityLevel if it is not a known level."""
    upper = level.upper() if isinstance(level, str) else ""
    if upper not in LEVELS:
        raise InvalidCompatibilityLevel(f'compatibility level "{level}" is not one of {", ".join(LEVELS)}')
    return upper


def check(new_schema: AvroSchema, existing_schemas: Sequence[AvroSchema], level: str) -> list[str]:
    """Check a new schema against the existing versions of a subject.

    Args:
        new_schema: the schema being registered (JSON value or text).
        existing_schemas: the subject's versions, oldest first (the last one is the latest).
        level: one of ``LEVELS``.

    Returns:
        One message per incompatibility, each naming the field; empty when compatible.

    Raises:
        InvalidCompatibilityLevel: ``level`` is unknown.
        InvalidSchema: a schema is not valid Avro.
    """
    level = validate_level(level)
    if level == NONE or not existing_schemas:
        return []
    new = parse(new_schema)
    transitive = level.endswith("_TRANSITIVE")
    against = list(reversed(existing_schemas)) if transitive else [existing_schemas[-1]]
    backward = level.startswith((BACKWARD, FULL))
    forward = level.startswith((FORWARD, FULL))
    messages: list[str] = []
    for old_schema in against:
        old = parse(old_schema)
        if backward:
            messages.extend(_Resolution(level, backward=True).run(reader=new, writer=old))
        if forward:
            messages.extend(_Resolution(level, backward=False).run(reader=old, writer=new))
    return list(dict.fromkeys(messages))  # transitive checks repeat the same problem: keep the first


def can_read(reader: AvroSchema, writer: AvroSchema) -> list[str]:
    """Whether data written with ``writer`` can be read with ``reader``; the problems, empty if it can."""
    return _Resolution(BACKWARD, backward=True).run(reader=parse(reader), writer=parse(writer))


class _Resolution:
    """One reader-vs-writer resolution, phrasing problems as changes from the old schema to the new one."""

    def __init__(self, level: str, *, backward: bool) -> None:
        self.backward = backward  # reader is the new schema, writer the old one
        self.suffix = (
            f"(a {level} reader cannot read old data)"
            if backward
            else f"(a {level} reader on the old schema cannot read new data)"
        )
        self.in_progress: set[tuple[int, int]] = set()

    def run(self, *, reader: AvroType, writer: AvroType) -> list[str]:
        problems: list[str] = []
        self.match(reader, writer, "", None, problems)
        return problems

    # --- helpers ------------------------------------------------------------------------------

    def _old_new(self, reader: AvroType, writer: AvroType) -> tuple[AvroType, AvroType]:
        return (writer, reader) if self.backward else (reader, writer)

    def _report(self, problems: list[str], path: str, record: str | None, what: str) -> None:
        if path:
            where = f'field "{path}" of record {record}'
        elif record:
            where = f"record {record}"
        else:
            where = "schema"
        problems.append(f"{where}: {what} {self.suffix}")

    def _compatible(self, reader: AvroType, writer: AvroType) -> bool:
        scratch: list[str] = []
        self.match(reader, writer, "", None, scratch)
        return not scratch

    @staticmethod
    def _names_match(reader: AvroType, writer: AvroType) -> bool:
        return reader.short_name == writer.short_name or (writer.name or "") in reader.aliases

    @classmethod
    def _same_shape(cls, reader: AvroType, writer: AvroType) -> bool:
        """Whether two types are the 'same thing' (worth a detailed diff rather than 'type changed')."""
        if reader.kind in _NAMED:
            return reader.kind == writer.kind and cls._names_match(reader, writer)
        return reader.kind == writer.kind or reader.kind in _PROMOTIONS.get(writer.kind, frozenset())

    # --- the rules ------------------------------------------------------------------------------

    def match(
        self, reader: AvroType, writer: AvroType, path: str, record: str | None, problems: list[str]
    ) -> None:
        if writer.kind == "union":
            self._writer_union(reader, writer, path, record, problems)
        elif reader.kind == "union":
            self._reader_union(reader, writer, path, record, problems)
        elif reader.kind == writer.kind:
            self._same_kind(reader, writer, path, record, problems)
        elif reader.kind not in _PROMOTIONS.get(writer.kind, frozenset()):
            self._type_changed(reader, writer, path, record, problems)

    def _type_changed(
        self, reader: AvroType, writer: AvroType, path: str, record: str | None, problems: list[str]
    ) -> None:
        old, new = self._old_new(reader, writer)
        self._report(problems, path, record, f"type changed from {old.describe()} to {new.describe()}")

    def _writer_union(
        self, reader: AvroType, writer: AvroType, path: str, record: str | None, problems: list[str]
    ) -> None:
        # Confluent (Avro's SchemaCompatibility) demands every writer branch be readable, not just the ones
        # that happen to be written.
        if reader.kind != "union":
            unreadable = [b for b in writer.branches if not self._compatible(reader, b)]
            if not unreadable:
                return
            shaped = [b for b in unreadable if self._same_shape(reader, b)]
            for branch in shaped:
                self.match(reader, branch, path, record, problems)
            if len(shaped) < len(unreadable):
                self._type_changed(reader, writer, path, record, problems)
            return
        for branch in writer.branches:
            if any(self._compatible(r, branch) for r in reader.branches):
                continue
            similar = next((r for r in reader.branches if self._same_shape(r, branch)), None)
            if similar is not None:
                self.match(similar, branch, path, record, problems)
            else:
                change = "removed from" if self.backward else "added to"
                self._report(problems, path, record, f"{branch.describe()} {change} the union")

    def _reader_union(
        self, reader: AvroType, writer: AvroType, path: str, record: str | None, problems: list[str]
    ) -> None:
        if any(self._compatible(r, writer) for r in reader.branches):
            return
        similar = next((r for r in reader.branches if self._same_shape(r, writer)), None)
        if similar is not None:
            self.match(similar, writer, path, record, problems)
        else:
            self._type_changed(reader, writer, path, record, problems)

    def _same_kind(
        self, reader: AvroType, writer: AvroType, path: str, record: str | None, problems: list[str]
    ) -> None:
        kind = reader.kind
        if kind == "record":
            self._record(reader, writer, path, problems)
            return
        if kind in ("enum", "fixed") and not self._names_match(reader, writer):
            self._type_changed(reader, writer, path, record, problems)
            return
        if kind == "enum":
            self._enum(reader, writer, path, record, problems)
            return
        if kind == "fixed" and reader.size != writer.size:
            old, new = self._old_new(reader, writer)
            self._report(
                problems, path, record, f"size of fixed {reader.name} changed from {old.size} to {new.size}"
            )
            return
        if kind == "array":
            assert reader.items is not None
            assert writer.items is not None
            self.match(reader.items, writer.items, f"{path}[]" if path else "[]", record, problems)
            return
        if kind == "map":
            assert reader.values is not None
            assert writer.values is not None
            self.match(reader.values, writer.values, f"{path}{{}}" if path else "{}", record, problems)
            return
        if (
            reader.logical == "decimal"
            and writer.logical == "decimal"
            and ((reader.precision, reader.scale) != (writer.precision, writer.scale))
        ):
            self._type_changed(reader, writer, path, record, problems)

    def _record(self, reader: AvroType, writer: AvroType, path: str, problems: list[str]) -> None:
        if not self._names_match(reader, writer):
            old, new = self._old_new(reader, writer)
            where = f'field "{path}" of record' if path else "record"
            problems.append(f"{where} {old.name}: renamed to {new.name} without an alias {self.suffix}")
            return
        pair = (id(reader), id(writer))
        if pair in self.in_progress:
            return  # a recursive type: the enclosing check covers it
        self.in_progress.add(pair)
        try:
            by_name = {f.name: f for f in writer.fields}
            for rfield in reader.fields:
                wfield = by_name.get(rfield.name)
                if wfield is None:
                    wfield = next((by_name[a] for a in rfield.aliases if a in by_name), None)
                fpath = f"{path}.{rfield.name}" if path else rfield.name
                if wfield is not None:
                    self.match(rfield.type, wfield.type, fpath, reader.name, problems)
                elif not rfield.has_default:
                    what = (
                        "added without a default"
                        if self.backward
                        else "removed, and the old schema has no default for it"
                    )
                    self._report(problems, fpath, reader.name, what)
        finally:
            self.in_progress.discard(pair)

    def _enum(
        self, reader: AvroType, writer: AvroType, path: str, record: str | None, problems: list[str]
    ) -> None:
        missing = [s for s in writer.symbols if s not in reader.symbols]
        if not missing or reader.enum_default is not None:
            return
        listed = ", ".join(missing)
        if self.backward:
            what = f"enum {reader.name}: symbols {listed} removed and the enum has no default"
        else:
            what = f"enum {reader.name}: symbols {listed} added and the old enum has no default"
        self._report(problems, path, record, what)
