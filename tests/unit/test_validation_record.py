"""RecordValidator: the dead-letter corpus (one bad record per reason) and Avro coercion."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
import uuid
from typing import Any

import fastavro
import pytest

from connectors.validation import REASONS, RecordValidator
from connectors.validation.errors import ConfigError, InvalidRecord

ID = "11010519491231002X"  # GB 11643's own example number
OTHER_ID = "310115199406139760"
CODE = "91350100M000100Y43"

PERSON_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Person",
    "namespace": "xhub.pd",
    "fields": [
        {"name": "id_number", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "gender", "type": {"type": "enum", "name": "Gender", "symbols": ["M", "F"]}},
        {"name": "birth_date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "height_cm", "type": ["null", "int"], "default": None},
        {"name": "guardian_id", "type": ["null", "string"], "default": None},
        {"name": "employer_code", "type": ["null", "string"], "default": None},
        {
            "name": "updated_at",
            "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            "default": None,
        },
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}
GOOD: dict[str, Any] = {
    "id_number": ID,
    "name": "张三",
    "gender": "F",
    "birth_date": "1949-12-31",
    "guardian_id": OTHER_ID,
    "employer_code": CODE,
    "updated_at": "2024-05-01T10:00:00+08:00",
    "tags": ["低保"],
}


def person_validator(max_bytes: int = 1_000_000) -> RecordValidator:
    return RecordValidator(
        PERSON_SCHEMA,
        "id_number",
        "citizen_id",
        max_bytes=max_bytes,
        checks={"guardian_id": "citizen_id", "employer_code": "credit_code"},
    )


def changed(**fields: Any) -> bytes:
    record = {**GOOD, **fields}
    return json.dumps(record, ensure_ascii=False).encode()


def without(field: str) -> bytes:
    return json.dumps({k: v for k, v in GOOD.items() if k != field}, ensure_ascii=False).encode()


# (case, raw JSON bytes, reason, field). Every reason the package can produce appears at least once.
CORPUS: list[tuple[str, bytes, str, str | None]] = [
    ("string for int", changed(height_cm="170"), "wrong_type", "height_cm"),
    ("float for int", changed(height_cm=170.0), "wrong_type", "height_cm"),
    ("bool for int", changed(height_cm=True), "wrong_type", "height_cm"),
    ("int out of range", changed(height_cm=2**31), "wrong_type", "height_cm"),
    ("number for string", changed(name=12), "wrong_type", "name"),
    ("unknown enum symbol", changed(gender="X"), "wrong_type", "gender"),
    ("array element", changed(tags=["a", 3]), "wrong_type", "tags[1]"),
    ("object for array", changed(tags={"a": 1}), "wrong_type", "tags"),
    ("required field absent", without("name"), "missing_field", "name"),
    ("required field null", changed(gender=None), "missing_field", "gender"),
    ("key absent", without("id_number"), "missing_key", "id_number"),
    ("key null", changed(id_number=None), "missing_key", "id_number"),
    ("key empty", changed(id_number=""), "missing_key", "id_number"),
    ("key too short", changed(id_number=ID[:17]), "bad_key_format", "id_number"),
    ("key with letters", changed(id_number="11010519491231ABCX"), "bad_key_format", "id_number"),
    (
        "key with impossible birth date",
        changed(id_number="110105194902300021"),
        "bad_key_format",
        "id_number",
    ),
    ("key not a string", changed(id_number=110105194912310021), "wrong_type", "id_number"),
    ("key check digit", changed(id_number=ID[:17] + "1"), "bad_id_check_digit", "id_number"),
    ("checked ID check digit", changed(guardian_id=OTHER_ID[:17] + "4"), "bad_id_check_digit", "guardian_id"),
    ("checked ID malformed", changed(guardian_id="31011519940613976"), "bad_id_number", "guardian_id"),
    ("credit code check char", changed(employer_code=CODE[:17] + "4"), "bad_credit_code", "employer_code"),
    (
        "credit code org check",
        changed(employer_code="91350100M000100Y53"),
        "bad_credit_code",
        "employer_code",
    ),
    ("credit code alphabet", changed(employer_code="91350100M000I00Y43"), "bad_credit_code", "employer_code"),
    ("oversize", changed(tags=["x" * 2000]), "oversize", None),
    ("invalid UTF-8 byte", changed(name="张三").replace("张".encode(), b"\xe5\xbc"), "invalid_utf8", None),
    (
        "latin-1 encoded",
        json.dumps({**GOOD, "name": "Zoë"}).encode().replace(b"\\u00eb", b"\xeb"),
        "invalid_utf8",
        None,
    ),
    ("lone surrogate escape", changed(name="x").replace(b'"x"', b'"\\ud800x"'), "invalid_utf8", "name"),
    ("unknown field", changed(nickname="三儿"), "unknown_field", "nickname"),
    ("truncated JSON", changed()[:40], "not_json", None),
    ("JSON array", b"[1, 2]", "not_json", None),
    ("empty", b"", "not_json", None),
    ("bad date", changed(birth_date="1949-02-30"), "bad_date", "birth_date"),
    ("date with slashes", changed(birth_date="1949/12/31"), "bad_date", "birth_date"),
    ("bad timestamp", changed(updated_at="yesterday"), "bad_date", "updated_at"),
]


@pytest.mark.parametrize(("case", "raw", "reason", "field"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_record_is_refused_with_reason(case: str, raw: bytes, reason: str, field: str | None) -> None:
    validator = person_validator(max_bytes=1000)
    with pytest.raises(InvalidRecord) as caught:
        validator.validate_json_bytes(raw)
    error = caught.value
    assert (error.reason, error.field) == (reason, field), error.detail
    assert error.original == raw
    assert "Person" in error.detail
    for personal in (ID, OTHER_ID, "张三", "三儿", ID[:17], OTHER_ID[:17]):
        assert personal not in error.detail


def test_corpus_covers_every_reason() -> None:
    assert {c[2] for c in CORPUS} == set(REASONS)


def test_good_record_passes_and_is_avro_ready() -> None:
    validator = person_validator()
    out = validator.validate_json_bytes(changed())
    assert out == {
        "id_number": ID,
        "name": "张三",
        "gender": "F",
        "birth_date": (dt.date(1949, 12, 31) - dt.date(1970, 1, 1)).days,
        "height_cm": None,
        "guardian_id": OTHER_ID,
        "employer_code": CODE,
        "updated_at": int(dt.datetime(2024, 5, 1, 2, tzinfo=dt.UTC).timestamp() * 1000),
        "tags": ["低保"],
    }
    parsed = fastavro.parse_schema(PERSON_SCHEMA)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, out)
    buffer.seek(0)
    back: Any = fastavro.schemaless_reader(buffer, parsed)
    assert back["birth_date"] == dt.date(1949, 12, 31)


def test_validate_dict_puts_json_in_original() -> None:
    with pytest.raises(InvalidRecord) as caught:
        person_validator().validate({**GOOD, "birth_date": dt.date(1949, 12, 31), "height_cm": "x"})
    assert caught.value.reason == "wrong_type"
    assert caught.value.original is not None
    assert json.loads(caught.value.original)["birth_date"] == "1949-12-31"


def test_validate_accepts_python_values_from_sql_sources() -> None:
    out = person_validator().validate(
        {
            **GOOD,
            "birth_date": dt.datetime(1949, 12, 31),  # Oracle DATE columns arrive as datetime
            "updated_at": dt.datetime(2024, 5, 1, 2, tzinfo=dt.UTC),
            "tags": ("a", "b"),
        }
    )
    assert out["birth_date"] == -7306
    assert out["updated_at"] == 1714528800000
    assert out["tags"] == ["a", "b"]


def test_datetime_with_time_for_a_date_is_bad_date() -> None:
    with pytest.raises(InvalidRecord) as caught:
        person_validator().validate({**GOOD, "birth_date": dt.datetime(1949, 12, 31, 8, 30)})
    assert caught.value.reason == "bad_date"


def test_null_checked_field_and_omitted_optional_fields_pass() -> None:
    out = person_validator().validate(
        {"id_number": ID, "name": "李四", "gender": "M", "birth_date": "1949-12-31", "guardian_id": None}
    )
    assert out["guardian_id"] is None
    assert out["employer_code"] is None
    assert out["tags"] == []


def test_mutable_defaults_are_not_shared() -> None:
    validator = person_validator()
    first = validator.validate({k: v for k, v in GOOD.items() if k != "tags"})
    first["tags"].append("changed")
    second = validator.validate({k: v for k, v in GOOD.items() if k != "tags"})
    assert second["tags"] == []


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("2024-05-01T10:00:00+08:00", 1714528800000),
        ("2024-05-01 10:00:00", 1714528800000),  # no offset: China Standard Time
        ("2024-05-01T02:00:00Z", 1714528800000),
        ("2024-05-01T02:00:00.123Z", 1714528800123),
        ("2024-05-01", 1714492800000),
        (1714528800000, 1714528800000),
    ],
)
def test_timestamp_inputs(text: str | int, millis: int) -> None:
    out = person_validator().validate({**GOOD, "updated_at": text})
    assert out["updated_at"] == millis


def test_naive_timestamps_can_be_read_in_another_zone() -> None:
    validator = RecordValidator(PERSON_SCHEMA, "id_number", "citizen_id", naive_tz=dt.UTC)
    assert validator.validate({**GOOD, "updated_at": "2024-05-01 02:00:00"})["updated_at"] == 1714528800000


ALL_TYPES_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "namespace": "xhub.test",
    "fields": [
        {"name": "key", "type": "string"},
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "precise", "type": "double"},
        {"name": "blob", "type": "bytes"},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2}},
        {
            "name": "fixed_amount",
            "type": {
                "type": "fixed",
                "name": "Money",
                "size": 8,
                "logicalType": "decimal",
                "precision": 10,
                "scale": 2,
            },
        },
        {"name": "opened", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "seen_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "wall", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "counts", "type": {"type": "map", "values": "long"}},
        {
            "name": "address",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [
                    {"name": "district", "type": "string"},
                    {"name": "room", "type": ["null", "string"], "default": None},
                    {"name": "raw", "type": "bytes", "default": "\u00ff\u0000"},
                ],
            },
        },
        {"name": "previous", "type": ["null", "Address"], "default": None},
        {"name": "choice", "type": ["null", "long", "string", "Address"], "default": None},
        {"name": "digest_again", "type": "xhub.test.Digest", "default": "abcd"},
    ],
}
ALL_GOOD: dict[str, Any] = {
    "key": "K-1",
    "flag": True,
    "small": -5,
    "big": 2**40,
    "ratio": 1,
    "precise": 2.5,
    "blob": base64.b64encode(b"\x00\x01").decode(),
    "digest": base64.b64encode(b"1234").decode(),
    "amount": "123456.70",
    "fixed_amount": 12.5,
    "opened": "08:30:00",
    "seen_us": "2024-05-01T02:00:00.000001Z",
    "wall": "2024-05-01T10:00:00",
    "ref": "12345678-1234-5678-1234-567812345678",
    "counts": {"a": 1, "b": 2},
    "address": {"district": "浦东新区"},
    "choice": "text",
}


def all_types_validator() -> RecordValidator:
    return RecordValidator(ALL_TYPES_SCHEMA, "key", "any")


def test_every_type_is_coerced_and_encodable() -> None:
    out = all_types_validator().validate(ALL_GOOD)
    assert isinstance(out["ratio"], float)
    assert out["ratio"] == 1.0
    assert out["blob"] == b"\x00\x01"
    assert out["digest"] == b"1234"
    assert out["amount"] == decimal.Decimal("123456.70")
    assert out["fixed_amount"] == decimal.Decimal("12.50")
    assert out["opened"] == (8 * 3600 + 30 * 60) * 1000
    assert out["seen_us"] == 1714528800000001
    assert out["wall"] == int(dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC).timestamp() * 1000)
    assert out["address"] == {"district": "浦东新区", "room": None, "raw": b"\xff\x00"}
    assert out["previous"] is None
    assert out["choice"] == "text"
    assert out["digest_again"] == b"abcd"
    parsed = fastavro.parse_schema(ALL_TYPES_SCHEMA)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, out)
    buffer.seek(0)
    back: Any = fastavro.schemaless_reader(buffer, parsed)
    assert back["amount"] == decimal.Decimal("123456.70")
    assert back["ref"] == uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"flag": 1}, "wrong_type", "flag"),
        ({"big": 2**63}, "wrong_type", "big"),
        ({"ratio": 1e39}, "wrong_type", "ratio"),
        ({"precise": "2.5"}, "wrong_type", "precise"),
        ({"blob": "not base64!"}, "wrong_type", "blob"),
        ({"digest": base64.b64encode(b"12345").decode()}, "wrong_type", "digest"),
        ({"amount": "1.234"}, "wrong_type", "amount"),
        ({"amount": "1234567.00"}, "wrong_type", "amount"),
        ({"amount": "NaN"}, "wrong_type", "amount"),
        ({"amount": "12a"}, "wrong_type", "amount"),
        ({"opened": "25:00"}, "bad_date", "opened"),
        ({"ref": "not-a-uuid"}, "wrong_type", "ref"),
        ({"counts": {"a": "1"}}, "wrong_type", "counts{#0}"),
        ({"address": {"district": 1}}, "wrong_type", "address.district"),
        ({"address": {"district": "x", "floor": 3}}, "unknown_field", "address.floor"),
        ({"address": {}}, "missing_field", "address.district"),
        ({"previous": {"district": None}}, "missing_field", "previous.district"),
        ({"choice": 1.5}, "wrong_type", "choice"),
        ({"key": " padded"}, "bad_key_format", "key"),
        ({"key": "tab\there"}, "bad_key_format", "key"),
        ({"key": "k" * 300}, "bad_key_format", "key"),
    ],
)
def test_type_errors_name_the_path(change: dict[str, Any], reason: str, field: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        all_types_validator().validate({**ALL_GOOD, **change})
    assert (caught.value.reason, caught.value.field) == (reason, field), caught.value.detail


def test_union_picks_the_branch_that_fits() -> None:
    validator = all_types_validator()
    assert validator.validate({**ALL_GOOD, "choice": 7})["choice"] == 7
    assert validator.validate({**ALL_GOOD, "choice": {"district": "黄浦区"}})["choice"] == {
        "district": "黄浦区",
        "room": None,
        "raw": b"\xff\x00",
    }


def test_integer_key_is_accepted_with_any_format() -> None:
    schema = {"type": "record", "name": "Row", "fields": [{"name": "id", "type": "long"}]}
    assert RecordValidator(schema, "id", "any").validate({"id": 5}) == {"id": 5}


def test_credit_code_key() -> None:
    schema = {
        "type": "record",
        "name": "Entity",
        "fields": [{"name": "credit_code", "type": "string"}, {"name": "name", "type": "string"}],
    }
    validator = RecordValidator(schema, "credit_code", "credit_code")
    assert validator.validate({"credit_code": CODE, "name": "x"})["credit_code"] == CODE
    for bad, reason in [(CODE[:17] + "4", "bad_credit_code"), (CODE[:16], "bad_key_format")]:
        with pytest.raises(InvalidRecord) as caught:
            validator.validate({"credit_code": bad, "name": "x"})
        assert caught.value.reason == reason


def test_recursive_schema() -> None:
    schema = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "children", "type": {"type": "array", "items": "Node"}, "default": []},
        ],
    }
    validator = RecordValidator(schema, "id", None)
    out = validator.validate({"id": "a", "children": [{"id": "b", "children": [{"id": "c"}]}]})
    assert out["children"][0]["children"][0] == {"id": "c", "children": []}
    with pytest.raises(InvalidRecord) as caught:
        validator.validate({"id": "a", "children": [{"id": "b", "children": [{"id": 3}]}]})
    assert caught.value.field == "children[0].children[0].id"


def test_oversize_encoded_record() -> None:
    validator = person_validator(max_bytes=10)
    with pytest.raises(InvalidRecord) as caught:
        validator.check_encoded_size(b"x" * 11)
    assert caught.value.reason == "oversize"
    validator.check_encoded_size(b"x" * 10)


def test_byte_order_mark_is_tolerated() -> None:
    assert person_validator().validate_json_bytes(b"\xef\xbb\xbf" + changed())["id_number"] == ID


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key_field": "nope", "key_format": None}, 'key field "nope" is not a field'),
        ({"key_field": "height_cm", "key_format": "citizen_id"}, "must be a string"),
        (
            {"key_field": "id_number", "key_format": "citizen_id", "checks": {"x": "citizen_id"}},
            '"x" is not a field',
        ),
        (
            {"key_field": "id_number", "key_format": "citizen_id", "checks": {"tags": "citizen_id"}},
            "must be a string",
        ),
        (
            {"key_field": "id_number", "key_format": "citizen_id", "checks": {"name": "passport"}},
            "not one of",
        ),
        ({"key_field": "id_number", "key_format": "shoe_size"}, "unknown key format"),
        (
            {"key_field": "id_number", "key_format": "citizen_id", "checks": {"id_number": "credit_code"}},
            "but check",
        ),
    ],
)
def test_bad_configuration_is_a_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RecordValidator(PERSON_SCHEMA, **kwargs)


def test_invalid_avro_schema_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid Avro"):
        RecordValidator({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}, "a", None)
    with pytest.raises(ConfigError, match="not an Avro record schema"):
        RecordValidator({"type": "enum", "name": "E", "symbols": ["A"]}, "a", None)


def test_key_listed_in_checks_uses_key_reasons() -> None:
    validator = RecordValidator(PERSON_SCHEMA, "id_number", None, checks={"id_number": "citizen_id"})
    with pytest.raises(InvalidRecord) as caught:
        validator.validate({**GOOD, "id_number": ID[:17]})
    assert caught.value.reason == "bad_key_format"


def test_record_default_in_first_union_branch() -> None:
    schema = {
        "type": "record",
        "name": "Holder",
        "fields": [
            {"name": "id", "type": "string"},
            {
                "name": "home",
                "type": [
                    {
                        "type": "record",
                        "name": "Home",
                        "fields": [{"name": "x", "type": "int", "default": 1}],
                    },
                    "null",
                ],
                "default": {"x": 2},
            },
            {"name": "other", "type": ["null", "Home"], "default": None},
        ],
    }
    validator = RecordValidator(schema, "id", "any")
    assert validator.validate({"id": "a"}) == {"id": "a", "home": {"x": 2}, "other": None}
    assert validator.validate({"id": "a", "other": {}})["other"] == {"x": 1}
