"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro binary body."""

from __future__ import annotations

import struct

from hub.core.errors import InvalidRecord

MAGIC = 0
HEADER = struct.Struct(">BI")
HEADER_SIZE = HEADER.size


def frame(schema_id: int, payload: bytes) -> bytes:
    """Prefix ``payload`` with the Confluent header for ``schema_id``."""
    return HEADER.pack(MAGIC, schema_id) + payload


def unframe(data: bytes) -> tuple[int, bytes]:
    """Split a Confluent-framed value into its schema id and Avro body.

    Raises:
        InvalidRecord: reason ``bad_wire_format`` when ``data`` is shorter than the header or its magic
            byte is not 0.
    """
    if len(data) < HEADER_SIZE:
        raise InvalidRecord(
            "bad_wire_format",
            f"value of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte Confluent header",
            original=bytes(data),
        )
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise InvalidRecord(
            "bad_wire_format",
            f"magic byte is {magic}, expected {MAGIC} (Confluent wire format)",
            original=bytes(data),
        )
    return schema_id, data[HEADER_SIZE:]
