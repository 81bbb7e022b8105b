"""The Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body."""

from __future__ import annotations

import pytest

from hub.core.errors import InvalidRecord
from hub.core.registry.wire import MAGIC, frame, unframe


def test_frame_layout_is_magic_then_big_endian_id() -> None:
    assert MAGIC == 0
    assert frame(1, b"abc") == b"\x00\x00\x00\x00\x01abc"
    assert frame(0x01020304, b"") == b"\x00\x01\x02\x03\x04"


@pytest.mark.parametrize("schema_id", [0, 1, 255, 256, 65_536, 2**31 - 1, 2**32 - 1])
def test_roundtrip(schema_id: int) -> None:
    assert unframe(frame(schema_id, b"\x02x")) == (schema_id, b"\x02x")


def test_empty_body_is_allowed() -> None:
    assert unframe(b"\x00\x00\x00\x00\x07") == (7, b"")


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00\x01"])
def test_short_data_is_bad_wire_format(data: bytes) -> None:
    with pytest.raises(InvalidRecord) as caught:
        unframe(data)
    assert caught.value.reason == "bad_wire_format"
    assert f"{len(data)} bytes" in caught.value.detail
    assert caught.value.original == data


@pytest.mark.parametrize("magic", [1, 0x7F, 0xFF])
def test_wrong_magic_is_bad_wire_format(magic: int) -> None:
    data = bytes([magic]) + b"\x00\x00\x00\x01payload"
    with pytest.raises(InvalidRecord) as caught:
        unframe(data)
    assert caught.value.reason == "bad_wire_format"
    assert f"magic byte is {magic}" in caught.value.detail
