"""EventBuilder: from a captured change to an encoded change event, or to a dead letter."""

from __future__ import annotations

import io
import json
from typing import Any, cast

import fastavro
import pytest

from connectors.runtime.events import EventBuilder
from connectors.sources import Captured, ResourceSpec
from connectors.testing.records import KEY_FIELD, RESOURCE, SCHEMA, bad_record, citizen_id, record
from hub.core.dead_letters import MAX_ORIGINAL_BYTES as MAX_DEAD_LETTER_ORIGINAL
from hub.core.errors import InvalidRecord
from hub.core.registry.serde import AvroSerde


class _Serde:
    """Avro without a registry: writes the record with the given schema, keeps what it wrote."""

    def __init__(self) -> None:
        self.parsed: dict[int, Any] = {}
        self.written: list[tuple[str, dict[str, Any]]] = []

    def encode(self, subject: str, schema: dict[str, Any], value: dict[str, Any]) -> bytes:
        parsed = self.parsed.setdefault(id(schema), fastavro.parse_schema(schema))
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, value)
        self.written.append((subject, value))
        return buffer.getvalue()

    def schema_id(self, subject: str, schema: dict[str, Any]) -> int:
        return 1


def _builder(max_bytes: int = 4096) -> tuple[EventBuilder, _Serde]:
    serde = _Serde()
    spec = ResourceSpec(RESOURCE, SCHEMA, KEY_FIELD, "citizen_id", {"employer_code": "credit_code"})
    builder = EventBuilder(
        dept="psb",
        system="hukou",
        resources={RESOURCE: spec},
        serde=cast(AvroSerde, serde),
        max_record_bytes=max_bytes,
    )
    return builder, serde


def _raw(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec, ensure_ascii=False).encode()


def test_a_change_becomes_a_keyed_event_on_the_source_topic() -> None:
    builder, serde = _builder()
    out = builder.event(Captured(RESOURCE, "u", 42, 1_700_000_000_000, "xhub_changelog#42", _raw(record(3))))
    assert out.topic == "xhub.src.psb.pd-soc-0001"
    assert out.key == citizen_id(3).encode()
    subject, value = serde.written[-1]
    assert subject == "xhub.src.psb.pd-soc-0001-value"
    assert value["op"] == "u"
    assert value["seq"] == 42
    assert value["source"] == {"dept": "psb", "system": "hukou", "commit_ts_ms": 1_700_000_000_000}
    assert value["data"]["birth_date"] == 5630, "ISO dates become Avro days"


def test_a_delete_carries_the_key_and_no_data() -> None:
    builder, serde = _builder()
    out = builder.event(Captured(RESOURCE, "d", 7, 1, "log#7", None, citizen_id(9)))
    assert out.key == citizen_id(9).encode()
    assert serde.written[-1][1]["data"] is None
    with pytest.raises(InvalidRecord) as info:
        builder.event(Captured(RESOURCE, "d", 8, 1, "log#8", None, None))
    assert info.value.reason == "missing_key"


@pytest.mark.parametrize(
    "case", ["wrong_type", "missing_key", "bad_id_check_digit", "bad_credit_code", "oversize"]
)
def test_bad_records_raise_with_their_reason(case: str) -> None:
    builder, _ = _builder()
    with pytest.raises(InvalidRecord) as info:
        builder.event(Captured(RESOURCE, "c", 1, 1, "log#1", _raw(bad_record(case, 5))))
    assert info.value.reason == case


def test_dead_letters_keep_reason_field_origin_and_original_bytes() -> None:
    builder, serde = _builder()
    raw = _raw(bad_record("bad_id_check_digit", 5))
    change = Captured(RESOURCE, "c", 1, 1, "xhub_changelog#1", raw)
    with pytest.raises(InvalidRecord) as info:
        builder.event(change)
    out = builder.dead_letter(change, info.value)
    assert out.topic == "xhub.dlq.psb"
    assert dict(out.headers or []) == {
        "xhub.reason": b"bad_id_check_digit",
        "xhub.field": b"id_number",
        "xhub.origin": b"xhub_changelog#1",
    }
    letter = serde.written[-1][1]
    assert letter["original"] == raw
    assert letter["owner"] == "psb"
    assert letter["resource"] == RESOURCE
    assert bad_record("bad_id_check_digit", 5)["id_number"] not in letter["detail"]


def test_huge_originals_are_cut_and_the_detail_says_so() -> None:
    builder, serde = _builder()
    change = Captured(RESOURCE, "c", 1, 1, "POST /records/x#0", b"x" * (MAX_DEAD_LETTER_ORIGINAL + 10))
    builder.dead_letter(change, InvalidRecord("oversize", "too big"))
    letter = serde.written[-1][1]
    assert len(letter["original"]) == MAX_DEAD_LETTER_ORIGINAL
    assert "truncated" in letter["detail"]


def test_changes_a_source_already_refused_or_of_unknown_resources_are_dead_letters() -> None:
    builder, _ = _builder()
    refused = InvalidRecord("bad_op", "op is not one of c, u, d, r", field="op", original=b"{}")
    with pytest.raises(InvalidRecord) as info:
        builder.event(Captured(RESOURCE, "u", 1, 1, "outbox#1", rejected=refused))
    assert info.value is refused
    with pytest.raises(InvalidRecord) as info:
        builder.event(Captured("PD-POP-0009", "u", 1, 1, "outbox#2", b"{}"))
    assert info.value.reason == "unknown_resource"
