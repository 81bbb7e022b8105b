"""Column kinds derived from delivered Avro record schemas."""

from __future__ import annotations

import pytest

from connectors.sinks.sql_types import FieldColumn, record_columns


def test_kinds_of_primitive_logical_and_complex_fields() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "namespace": "gov.test",
        "fields": [
            {"name": "s", "type": "string"},
            {"name": "i", "type": "int"},
            {"name": "l", "type": ["null", "long"]},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "b", "type": "boolean"},
            {"name": "raw", "type": "bytes"},
            {"name": "day", "type": ["null", {"type": "int", "logicalType": "date"}]},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
            {"name": "t", "type": {"type": "int", "logicalType": "time-millis"}},
            {
                "name": "money",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
            },
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["A", "B"]}},
            {"name": "state2", "type": ["null", "State"]},
            {"name": "state3", "type": "gov.test.State"},
            {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
            {
                "name": "addr",
                "type": {"type": "record", "name": "Addr", "fields": [{"name": "x", "type": "string"}]},
            },
            {"name": "addr2", "type": ["null", "Addr"]},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": {"type": "map", "values": "long"}},
            {"name": "either", "type": ["null", "string", "long"]},
        ],
    }
    kinds = {c.name: c.kind for c in record_columns(schema)}
    assert kinds == {
        "s": "string",
        "i": "int",
        "l": "long",
        "f": "float",
        "d": "double",
        "b": "boolean",
        "raw": "bytes",
        "day": "date",
        "at": "timestamp",
        "local": "local_timestamp",
        "t": "time",
        "money": "decimal",
        "id": "uuid",
        "state": "enum",
        "state2": "enum",
        "state3": "enum",
        "hash": "fixed",
        "addr": "json",
        "addr2": "json",
        "tags": "json",
        "attrs": "json",
        "either": "json",
    }


def test_field_order_is_kept() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "b", "type": "int"}, {"name": "a", "type": "string"}],
    }
    assert record_columns(schema) == [FieldColumn("b", "int"), FieldColumn("a", "string")]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "enum", "name": "E", "symbols": ["A"]},
        {"type": "record", "name": "R", "fields": [{"name": "bad name", "type": "int"}]},
    ],
)
def test_unusable_schemas_raise_value_error(schema: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        record_columns(schema)
