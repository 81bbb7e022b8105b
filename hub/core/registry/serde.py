"""Avro values in the Confluent wire format, with schemas from a registry.

Per record, ``encode`` and ``decode`` do a dictionary lookup and the Avro work, nothing else: the schema id,
the 5-byte header and the parsed fastavro schemas are cached the first time a schema (or schema id) is seen.
Writer schemas are cached by the identity of the schema object you pass, so pass the same object each time
and do not mutate it after first use.
"""

from __future__ import annotations

import io
import struct
import threading
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.validation import ValidationError, validate

from hub.core.errors import InvalidRecord
from hub.core.registry.client import RegistryClient
from hub.core.registry.compatibility import check
from hub.core.registry.errors import SchemaNotFound
from hub.core.registry.schema import AvroSchema, canonical_text, load
from hub.core.registry.wire import HEADER, MAGIC, unframe

_CACHE_LIMIT = 4096  # identity-keyed entries; a caller building a new schema object per record must not leak
_DECODE_ERRORS = (
    SchemaResolutionError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    OverflowError,
    UnicodeDecodeError,
    StopIteration,
    struct.error,
)
_ENCODE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error)


@dataclass(frozen=True, slots=True)
class _Writer:
    source: object
    schema_id: int
    header: bytes
    parsed: Any


@dataclass(frozen=True, slots=True)
class _Reader:
    source: object
    writer: Any
    reader: Any  # None when the reader schema is the writer schema
    mismatch: str | None  # why the reader cannot read every value of this writer schema, if it cannot


class AvroSerde:
    """Encode and decode Avro records framed with their schema id (Confluent wire format).

    Args:
        client: the registry to register and look up schemas in.
    """

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._writers: dict[tuple[str, int], _Writer] = {}
        self._writers_by_text: dict[tuple[str, str], _Writer] = {}
        self._readers: dict[tuple[int, int, bool], _Reader] = {}
        self._readers_by_text: dict[tuple[int, str, bool], _Reader] = {}

    # --- encoding -----------------------------------------------------------------------------

    def encode(self, subject: str, schema: AvroSchema, record: Any) -> bytes:
        """Encode ``record`` with ``schema``, registered under ``subject`` (once, then cached).

        Raises:
            InvalidRecord: reason ``unencodable``, naming the fields that do not match (never their values).
            IncompatibleSchema, InvalidSchema, RegistryUnavailable: from registering the schema.
        """
        writer = self._writers.get((subject, id(schema)))
        if writer is None or writer.source is not schema:
            writer = self._writer(subject, schema)
        buffer = io.BytesIO()
        buffer.write(writer.header)
        try:
            fastavro.schemaless_writer(buffer, writer.parsed, record)
        except _ENCODE_ERRORS as exc:
            raise self._unencodable(subject, writer, record, exc) from exc
        return buffer.getvalue()

    def schema_id(self, subject: str, schema: AvroSchema) -> int:
        """The id ``encode`` frames records of ``schema`` under ``subject`` with (registers it if needed)."""
        writer = self._writers.get((subject, id(schema)))
        if writer is None or writer.source is not schema:
            writer = self._writer(subject, schema)
        return writer.schema_id

    def _writer(self, subject: str, schema: AvroSchema) -> _Writer:
        text = canonical_text(schema)
        with self._lock:
            writer = self._writers_by_text.get((subject, text))
        if writer is None:
            schema_id = self.client.register(subject, text)
            writer = _Writer(
                text, schema_id, HEADER.pack(MAGIC, schema_id), fastavro.parse_schema(load(text))
            )
            with self._lock:
                self._writers_by_text[(subject, text)] = writer
        entry = _Writer(schema, writer.schema_id, writer.header, writer.parsed)
        with self._lock:
            if len(self._writers) >= _CACHE_LIMIT:
                self._writers.clear()
            self._writers[(subject, id(schema))] = entry
        return entry

    @staticmethod
    def _unencodable(subject: str, writer: _Writer, record: Any, exc: Exception) -> InvalidRecord:
        fields: list[str] = []
        try:
            validate(record, writer.parsed, raise_errors=True)
        except ValidationError as invalid:
            fields = list(dict.fromkeys(str(e.field) for e in invalid.errors if getattr(e, "field", None)))
        except _ENCODE_ERRORS:
            fields = []
        where = f" at field {', '.join(fields)}" if fields else ""
        # the exception text may quote the value (personal data): name only its type
        return InvalidRecord(
            "unencodable",
            f'record does not match schema id {writer.schema_id} of subject "{subject}"{where} '
            f"({type(exc).__name__})",
            field=fields[0] if fields else None,
        )

    # --- decoding -----------------------------------------------------------------------------

    def decode(
        self, data: bytes, reader_schema: AvroSchema | None = None, *, logical: bool = True
    ) -> tuple[int, Any]:
        """Decode a Confluent-framed value; return (schema id, record).

        Args:
            data: the framed value.
            reader_schema: read the record as this schema (Avro schema resolution); None reads it as written.
            logical: False leaves logical types as their Avro values (a ``date`` as days since 1970, a
                ``timestamp-millis`` as epoch millis, a ``decimal`` as its bytes): a reader that only passes
                them on (the hub re-encodes them unchanged) saves building and taking apart a datetime,
                date or Decimal per value. The bytes a re-encode yields are the same either way.

        Resolution is per value: a writer schema the reader cannot fully read (say a new enum symbol the
        reader's enum lacks, without a default) still yields the values that resolve; the others raise
        ``schema_mismatch``.

        Raises:
            InvalidRecord: reason ``bad_wire_format``, ``unknown_schema_id``, ``schema_mismatch`` (the
                value cannot be resolved to ``reader_schema``) or ``undecodable`` (names the schema id).
            RegistryUnavailable: the registry did not answer (retry; the record is not at fault).
        """
        schema_id, payload = unframe(data)
        reader = self._readers.get((schema_id, id(reader_schema), logical))
        if reader is None or reader.source is not reader_schema:
            reader = self._reader(schema_id, reader_schema, data, logical=logical)
        try:
            record = fastavro.schemaless_reader(io.BytesIO(payload), reader.writer, reader.reader)
        except SchemaResolutionError as exc:
            # fastavro's message may quote the value: say what differs between the schemas instead
            why = reader.mismatch or f"a value does not resolve ({type(exc).__name__})"
            raise InvalidRecord(
                "schema_mismatch",
                f"value with schema id {schema_id} cannot be read with the reader schema: {why}",
                original=bytes(data),
            ) from exc
        except _DECODE_ERRORS as exc:
            raise InvalidRecord(
                "undecodable",
                f"value with schema id {schema_id} cannot be decoded ({type(exc).__name__})",
                original=bytes(data),
            ) from exc
        return schema_id, record

    def _reader(
        self, schema_id: int, reader_schema: AvroSchema | None, data: bytes, *, logical: bool
    ) -> _Reader:
        reader_text = "" if reader_schema is None else canonical_text(reader_schema)
        with self._lock:
            shared = self._readers_by_text.get((schema_id, reader_text, logical))
        if shared is None:
            shared = self._build_reader(schema_id, reader_schema, reader_text, data, logical=logical)
            with self._lock:
                self._readers_by_text[(schema_id, reader_text, logical)] = shared
        entry = _Reader(reader_schema, shared.writer, shared.reader, shared.mismatch)
        with self._lock:
            if len(self._readers) >= _CACHE_LIMIT:
                self._readers.clear()
            self._readers[(schema_id, id(reader_schema), logical)] = entry
        return entry

    def _build_reader(
        self,
        schema_id: int,
        reader_schema: AvroSchema | None,
        reader_text: str,
        data: bytes,
        *,
        logical: bool,
    ) -> _Reader:
        try:
            writer_schema = self.client.get_schema(schema_id)
        except SchemaNotFound as exc:
            raise InvalidRecord(
                "unknown_schema_id",
                f"schema id {schema_id} is not registered at {self.client.url}",
                original=bytes(data),
            ) from exc
        # fastavro converts by the writer schema's logical types (whatever the reader's say): both lose them
        writer_parsed = fastavro.parse_schema(writer_schema if logical else _strip_logical(writer_schema))
        if reader_schema is None or reader_text == canonical_text(writer_schema):
            return _Reader(None, writer_parsed, None, None)
        # Phrased as the writer's change against the reader: the source moved on, the reader did not.
        problems = check(writer_schema, [reader_schema], "FORWARD")
        mismatch = "; ".join(problems[:3]) if problems else None
        reader_json = load(reader_schema)
        reader_parsed = fastavro.parse_schema(reader_json if logical else _strip_logical(reader_json))
        return _Reader(None, writer_parsed, reader_parsed, mismatch)


def _strip_logical(schema: Any) -> Any:
    """``schema`` (JSON) without its ``logicalType`` annotations: values read as their Avro base type."""
    if isinstance(schema, list):
        return [_strip_logical(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: _strip_logical(v) for k, v in schema.items() if k != "logicalType"}
