"""Compatibility checks: Avro schema-resolution rules at every level, with messages that name the field."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.registry.compatibility import LEVELS, can_read, check
from hub.core.registry.errors import InvalidCompatibilityLevel, InvalidSchema

NS = "gov.xhub"


def rec(*fields: dict[str, Any], name: str = "Person", ns: str | None = NS, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "record", "name": name, "fields": list(fields), **extra}
    if ns:
        schema["namespace"] = ns
    return schema


def fld(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


NAME = fld("name", "string")
PHONE = fld("phone", "string")
PHONE_DEFAULT = fld("phone", "string", default="")


def roundtrip(writer: Any, reader: Any, datum: Any) -> Any:
    """What fastavro, a real Avro implementation, reads back: the ground truth for 'compatible'."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(writer), datum)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, fastavro.parse_schema(writer), fastavro.parse_schema(reader))


# --- levels and basics ---------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_identical_schema_is_compatible_at_every_level(level: str) -> None:
    schema = rec(NAME, PHONE)
    assert check(schema, [schema], level) == []
    assert check(schema, [schema, schema], level) == []


@pytest.mark.parametrize("level", LEVELS)
def test_first_version_is_always_compatible(level: str) -> None:
    assert check(rec(NAME), [], level) == []


def test_none_accepts_anything() -> None:
    assert check("string", [rec(NAME)], "NONE") == []


def test_unknown_level_is_refused_naming_it() -> None:
    with pytest.raises(InvalidCompatibilityLevel, match='"SIDEWAYS"'):
        check(rec(NAME), [rec(NAME)], "SIDEWAYS")


def test_level_is_case_insensitive() -> None:
    assert check(rec(NAME, PHONE), [rec(NAME)], "backward") != []


def test_schemas_may_be_json_text() -> None:
    assert check(json.dumps(rec(NAME, PHONE)), [json.dumps(rec(NAME))], "BACKWARD") != []
    assert check('"long"', ['"int"'], "BACKWARD") == []


# --- record fields -------------------------------------------------------------------------------


def test_added_field_without_default_is_not_backward_and_the_message_names_it() -> None:
    assert check(rec(NAME, PHONE), [rec(NAME)], "BACKWARD") == [
        'field "phone" of record gov.xhub.Person: added without a default '
        "(a BACKWARD reader cannot read old data)"
    ]


def test_added_field_with_default_is_full_compatible() -> None:
    for level in LEVELS:
        assert check(rec(NAME, PHONE_DEFAULT), [rec(NAME)], level) == []
    assert roundtrip(rec(NAME), rec(NAME, PHONE_DEFAULT), {"name": "x"}) == {"name": "x", "phone": ""}


def test_added_field_without_default_is_forward_compatible() -> None:
    assert check(rec(NAME, PHONE), [rec(NAME)], "FORWARD") == []


def test_removed_field_is_backward_but_not_forward_when_the_old_had_no_default() -> None:
    assert check(rec(NAME), [rec(NAME, PHONE)], "BACKWARD") == []
    assert check(rec(NAME), [rec(NAME, PHONE)], "FORWARD") == [
        'field "phone" of record gov.xhub.Person: removed, and the old schema has no default for it '
        "(a FORWARD reader on the old schema cannot read new data)"
    ]
    assert check(rec(NAME), [rec(NAME, PHONE_DEFAULT)], "FORWARD") == []


def test_full_reports_both_directions() -> None:
    problems = check(rec(PHONE), [rec(NAME)], "FULL")
    assert problems == [
        'field "phone" of record gov.xhub.Person: added without a default (a FULL reader cannot '
        "read old data)",
        'field "name" of record gov.xhub.Person: removed, and the old schema has no default for it '
        "(a FULL reader on the old schema cannot read new data)",
    ]


def test_renamed_field_with_an_alias_is_backward_compatible() -> None:
    renamed = rec(NAME, fld("mobile", "string", aliases=["phone"]))
    assert check(renamed, [rec(NAME, PHONE)], "BACKWARD") == []
    assert roundtrip(rec(NAME, PHONE), renamed, {"name": "a", "phone": "1"}) == {"name": "a", "mobile": "1"}
    # aliases are a reader-side feature: the old reader does not know "mobile"
    assert check(renamed, [rec(NAME, PHONE)], "FORWARD") != []


def test_field_order_does_not_matter() -> None:
    assert check(rec(PHONE, NAME), [rec(NAME, PHONE)], "FULL") == []


# --- primitive types and promotions --------------------------------------------------------------

PROMOTIONS = [
    ("int", "long", 7, 7),
    ("int", "float", 7, 7.0),
    ("int", "double", 7, 7.0),
    ("long", "float", 7, 7.0),
    ("long", "double", 7, 7.0),
    ("float", "double", 1.5, 1.5),
    ("string", "bytes", "hello", b"hello"),
    ("bytes", "string", b"hello", "hello"),
]


@pytest.mark.parametrize(("old", "new", "datum", "read"), PROMOTIONS)
def test_avro_promotions_are_backward_compatible(old: str, new: str, datum: Any, read: Any) -> None:
    assert check(rec(fld("v", new)), [rec(fld("v", old))], "BACKWARD") == []
    assert roundtrip(rec(fld("v", old)), rec(fld("v", new)), {"v": datum}) == {"v": read}


@pytest.mark.parametrize(("old", "new"), [p[:2] for p in PROMOTIONS if {p[0], p[1]} != {"string", "bytes"}])
def test_promotions_do_not_work_the_other_way(old: str, new: str) -> None:
    problems = check(rec(fld("v", new)), [rec(fld("v", old))], "FORWARD")
    assert problems == [
        f'field "v" of record gov.xhub.Person: type changed from {old} to {new} '
        "(a FORWARD reader on the old schema cannot read new data)"
    ]
    assert check(rec(fld("v", old)), [rec(fld("v", new))], "BACKWARD") != []


def test_string_and_bytes_are_fully_interchangeable() -> None:
    assert check(rec(fld("v", "bytes")), [rec(fld("v", "string"))], "FULL") == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("int", "string"),
        ("string", "int"),
        ("boolean", "int"),
        ("long", "int"),
        ("double", "float"),
        ("null", "int"),
    ],
)
def test_unrelated_type_changes_are_refused_naming_the_field(old: str, new: str) -> None:
    assert check(rec(fld("age", new)), [rec(fld("age", old))], "BACKWARD") == [
        f'field "age" of record gov.xhub.Person: type changed from {old} to {new} '
        "(a BACKWARD reader cannot read old data)"
    ]


def test_int_to_long_is_not_full_compatible() -> None:
    assert len(check(rec(fld("n", "long")), [rec(fld("n", "int"))], "FULL")) == 1


def test_logical_types_resolve_by_their_underlying_type() -> None:
    old = rec(fld("born", {"type": "int", "logicalType": "date"}))
    new = rec(fld("born", {"type": "long", "logicalType": "timestamp-millis"}))
    assert check(new, [old], "BACKWARD") == []


def test_decimal_precision_or_scale_change_is_refused() -> None:
    def dec(precision: int, scale: int) -> dict[str, Any]:
        return rec(
            fld("amount", {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale})
        )

    assert check(dec(10, 2), [dec(10, 2)], "FULL") == []
    assert check(dec(12, 2), [dec(10, 2)], "BACKWARD") == [
        'field "amount" of record gov.xhub.Person: type changed from bytes decimal(10,2) to bytes '
        "decimal(12,2) "
        "(a BACKWARD reader cannot read old data)"
    ]


def test_top_level_primitive_change_names_the_schema() -> None:
    assert check("int", ["string"], "BACKWARD") == [
        "schema: type changed from string to int (a BACKWARD reader cannot read old data)"
    ]
    assert check("long", ["int"], "BACKWARD") == []


# --- unions --------------------------------------------------------------------------------------


def test_making_a_field_optional_is_backward_not_forward() -> None:
    old, new = rec(fld("phone", "string")), rec(fld("phone", ["null", "string"], default=None))
    assert check(new, [old], "BACKWARD") == []
    assert roundtrip(old, new, {"phone": "1"}) == {"phone": "1"}
    assert check(new, [old], "FORWARD") == [
        'field "phone" of record gov.xhub.Person: type changed from string to union[null, string] '
        "(a FORWARD reader on the old schema cannot read new data)"
    ]


def test_making_an_optional_field_required_is_refused() -> None:
    old, new = rec(fld("phone", ["null", "string"], default=None)), rec(fld("phone", "string"))
    assert check(new, [old], "BACKWARD") == [
        'field "phone" of record gov.xhub.Person: type changed from union[null, string] to string '
        "(a BACKWARD reader cannot read old data)"
    ]


def test_adding_a_union_branch_is_backward_removing_one_is_not() -> None:
    small = rec(fld("v", ["null", "string"], default=None))
    large = rec(fld("v", ["null", "string", "int"], default=None))
    assert check(large, [small], "BACKWARD") == []
    assert check(large, [small], "FORWARD") == [
        'field "v" of record gov.xhub.Person: int added to the union '
        "(a FORWARD reader on the old schema cannot read new data)"
    ]
    assert check(small, [large], "BACKWARD") == [
        'field "v" of record gov.xhub.Person: int removed from the union (a BACKWARD reader cannot '
        "read old data)"
    ]


def test_promotion_inside_a_union() -> None:
    old = rec(fld("v", ["null", "int"], default=None))
    new = rec(fld("v", ["null", "long"], default=None))
    assert check(new, [old], "BACKWARD") == []
    assert roundtrip(old, new, {"v": 3}) == {"v": 3}


def test_reader_union_reads_a_promotable_writer_branch() -> None:
    assert check(rec(fld("v", ["null", "double"], default=None)), [rec(fld("v", "int"))], "BACKWARD") == []


def test_record_inside_a_union_is_diffed_field_by_field() -> None:
    address_v1 = {"type": "record", "name": "Address", "fields": [fld("city", "string")]}
    address_v2 = {
        "type": "record",
        "name": "Address",
        "fields": [fld("city", "string"), fld("zip", "string")],
    }
    old = rec(fld("address", ["null", address_v1], default=None))
    new = rec(fld("address", ["null", address_v2], default=None))
    assert check(new, [old], "BACKWARD") == [
        'field "address.zip" of record gov.xhub.Address: added without a default '
        "(a BACKWARD reader cannot read old data)"
    ]


# --- enums ---------------------------------------------------------------------------------------


def enum(*symbols: str, default: str | None = None, name: str = "Status", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "enum", "name": name, "symbols": list(symbols), **extra}
    if default:
        schema["default"] = default
    return schema


def test_added_enum_symbol_is_backward_not_forward() -> None:
    old, new = rec(fld("status", enum("A", "B"))), rec(fld("status", enum("A", "B", "C")))
    assert check(new, [old], "BACKWARD") == []
    assert check(new, [old], "FORWARD") == [
        'field "status" of record gov.xhub.Person: enum gov.xhub.Status: symbols C added and the '
        "old enum has "
        "no default (a FORWARD reader on the old schema cannot read new data)"
    ]


def test_removed_enum_symbol_is_refused_unless_the_reader_has_an_enum_default() -> None:
    old = rec(fld("status", enum("A", "B", "C")))
    assert check(rec(fld("status", enum("A", "B"))), [old], "BACKWARD") == [
        'field "status" of record gov.xhub.Person: enum gov.xhub.Status: symbols C removed and the enum has '
        "no default (a BACKWARD reader cannot read old data)"
    ]
    with_default = rec(fld("status", enum("A", "B", default="A")))
    assert check(with_default, [old], "BACKWARD") == []
    assert roundtrip(old, with_default, {"status": "C"}) == {"status": "A"}


def test_old_enum_default_makes_added_symbols_forward_compatible() -> None:
    old, new = (
        rec(fld("status", enum("A", "B", default="A"))),
        rec(fld("status", enum("A", "B", "C", default="A"))),
    )
    assert check(new, [old], "FULL") == []


def test_renamed_enum_is_refused_unless_aliased() -> None:
    old = rec(fld("status", enum("A")))
    assert check(rec(fld("status", enum("A", name="State"))), [old], "BACKWARD") == [
        'field "status" of record gov.xhub.Person: type changed from enum gov.xhub.Status to enum '
        "gov.xhub.State "
        "(a BACKWARD reader cannot read old data)"
    ]
    aliased = rec(fld("status", enum("A", name="State", aliases=["Status"])))
    assert check(aliased, [old], "BACKWARD") == []


# --- nested records, arrays, maps, fixed ---------------------------------------------------------


def person_with_address(*address_fields: dict[str, Any]) -> dict[str, Any]:
    return rec(NAME, fld("address", {"type": "record", "name": "Address", "fields": list(address_fields)}))


def test_nested_record_change_names_the_path_and_the_inner_record() -> None:
    old = person_with_address(fld("city", "string"))
    new = person_with_address(fld("city", "int"))
    assert check(new, [old], "BACKWARD") == [
        'field "address.city" of record gov.xhub.Address: type changed from string to int '
        "(a BACKWARD reader cannot read old data)"
    ]


def test_nested_record_field_added_with_default_is_compatible() -> None:
    old = person_with_address(fld("city", "string"))
    new = person_with_address(fld("city", "string"), fld("zip", "string", default="000000"))
    assert check(new, [old], "FULL") == []


def test_array_items_follow_the_rules() -> None:
    assert (
        check(
            rec(fld("scores", {"type": "array", "items": "long"})),
            [rec(fld("scores", {"type": "array", "items": "int"}))],
            "BACKWARD",
        )
        == []
    )
    assert check(
        rec(fld("tags", {"type": "array", "items": "int"})),
        [rec(fld("tags", {"type": "array", "items": "string"}))],
        "BACKWARD",
    ) == [
        'field "tags[]" of record gov.xhub.Person: type changed from string to int '
        "(a BACKWARD reader cannot read old data)"
    ]


def test_array_of_records_names_the_inner_field() -> None:
    def phones(*fields: dict[str, Any]) -> dict[str, Any]:
        return rec(
            fld(
                "phones",
                {"type": "array", "items": {"type": "record", "name": "Phone", "fields": list(fields)}},
            )
        )

    assert check(
        phones(fld("number", "string"), fld("kind", "string")), [phones(fld("number", "string"))], "BACKWARD"
    ) == [
        'field "phones[].kind" of record gov.xhub.Phone: added without a default '
        "(a BACKWARD reader cannot read old data)"
    ]


def test_map_values_follow_the_rules() -> None:
    assert (
        check(
            rec(fld("attrs", {"type": "map", "values": "double"})),
            [rec(fld("attrs", {"type": "map", "values": "float"}))],
            "BACKWARD",
        )
        == []
    )
    assert check(
        rec(fld("attrs", {"type": "map", "values": "boolean"})),
        [rec(fld("attrs", {"type": "map", "values": "string"}))],
        "BACKWARD",
    ) == [
        'field "attrs{}" of record gov.xhub.Person: type changed from string to boolean '
        "(a BACKWARD reader cannot read old data)"
    ]


def test_array_to_map_is_a_type_change() -> None:
    assert check(
        rec(fld("x", {"type": "map", "values": "int"})),
        [rec(fld("x", {"type": "array", "items": "int"}))],
        "BACKWARD",
    ) == [
        'field "x" of record gov.xhub.Person: type changed from array<int> to map<int> '
        "(a BACKWARD reader cannot read old data)"
    ]


def test_fixed_size_and_name_must_match() -> None:
    def fixed(size: int, name: str = "Hash") -> dict[str, Any]:
        return rec(fld("hash", {"type": "fixed", "name": name, "size": size}))

    assert check(fixed(16), [fixed(16)], "FULL") == []
    assert check(fixed(32), [fixed(16)], "BACKWARD") == [
        'field "hash" of record gov.xhub.Person: size of fixed gov.xhub.Hash changed from 16 to 32 '
        "(a BACKWARD reader cannot read old data)"
    ]
    assert check(fixed(16, "Digest"), [fixed(16)], "BACKWARD") == [
        'field "hash" of record gov.xhub.Person: type changed from fixed gov.xhub.Hash(16) to fixed '
        "gov.xhub.Digest(16) (a BACKWARD reader cannot read old data)"
    ]


# --- named types, aliases, recursion ---------------------------------------------------------------


def test_named_type_referenced_twice_is_checked_at_each_use() -> None:
    def schema(city_type: str) -> dict[str, Any]:
        address = {"type": "record", "name": "Address", "fields": [fld("city", city_type)]}
        return rec(fld("home", address), fld("work", "Address"))

    assert check(schema("string"), [schema("string")], "FULL") == []
    assert check(schema("int"), [schema("string")], "BACKWARD") == [
        'field "home.city" of record gov.xhub.Address: type changed from string to int '
        "(a BACKWARD reader cannot read old data)",
        'field "work.city" of record gov.xhub.Address: type changed from string to int '
        "(a BACKWARD reader cannot read old data)",
    ]


def test_record_rename_needs_an_alias() -> None:
    assert check(rec(NAME, name="Citizen"), [rec(NAME)], "BACKWARD") == [
        "record gov.xhub.Person: renamed to gov.xhub.Citizen without an alias "
        "(a BACKWARD reader cannot read old data)"
    ]
    assert check(rec(NAME, name="Citizen", aliases=["Person"]), [rec(NAME)], "BACKWARD") == []
    assert roundtrip(rec(NAME), rec(NAME, name="Citizen", aliases=["Person"]), {"name": "a"}) == {"name": "a"}


def test_namespace_change_alone_is_compatible_like_avro() -> None:
    assert check(rec(NAME, ns="gov.other"), [rec(NAME)], "FULL") == []


def test_recursive_schema_terminates_and_is_checked() -> None:
    def node(*extra: dict[str, Any]) -> dict[str, Any]:
        return rec(fld("value", "int"), fld("next", ["null", "Node"], default=None), *extra, name="Node")

    assert check(node(), [node()], "FULL_TRANSITIVE") == []
    assert check(node(fld("label", "string", default="")), [node()], "FULL") == []
    assert check(node(fld("label", "string")), [node()], "BACKWARD") == [
        'field "label" of record gov.xhub.Node: added without a default (a BACKWARD reader cannot '
        "read old data)"
    ]


# --- transitive levels ---------------------------------------------------------------------------


def test_backward_transitive_checks_every_version() -> None:
    v1 = rec(NAME)
    v2 = rec(NAME, PHONE_DEFAULT)
    v3 = rec(NAME, PHONE)  # fine against v2 (which has phone), not against v1
    assert check(v3, [v1, v2], "BACKWARD") == []
    assert check(v3, [v1, v2], "BACKWARD_TRANSITIVE") == [
        'field "phone" of record gov.xhub.Person: added without a default '
        "(a BACKWARD_TRANSITIVE reader cannot read old data)"
    ]


def test_forward_transitive_checks_every_version() -> None:
    v1 = rec(NAME, PHONE)
    v2 = rec(NAME, PHONE_DEFAULT)
    v3 = rec(NAME)
    assert check(v3, [v1, v2], "FORWARD") == []
    assert check(v3, [v1, v2], "FORWARD_TRANSITIVE") == [
        'field "phone" of record gov.xhub.Person: removed, and the old schema has no default for it '
        "(a FORWARD_TRANSITIVE reader on the old schema cannot read new data)"
    ]


def test_full_transitive_checks_both_directions_against_every_version() -> None:
    v1 = rec(NAME, fld("age", "int"))
    v2 = rec(NAME, fld("age", "int", default=0))
    v3 = rec(NAME)
    assert check(v3, [v1, v2], "FULL") == []
    assert len(check(v3, [v1, v2], "FULL_TRANSITIVE")) == 1


def test_the_same_problem_against_several_versions_is_reported_once() -> None:
    assert len(check(rec(NAME, PHONE), [rec(NAME), rec(NAME)], "BACKWARD_TRANSITIVE")) == 1


# --- invalid schemas -----------------------------------------------------------------------------


def test_unknown_type_is_an_invalid_schema_naming_the_field() -> None:
    with pytest.raises(InvalidSchema, match=r'field "x" of record gov\.xhub\.Person: unknown type "Missing"'):
        check(rec(fld("x", "Missing")), [rec(NAME)], "BACKWARD")


def test_bad_default_is_an_invalid_schema_naming_the_field() -> None:
    with pytest.raises(
        InvalidSchema, match=r'field "age" of record gov\.xhub\.Person: default does not match'
    ):
        check(rec(fld("age", "int", default="ten")), [rec(NAME)], "BACKWARD")
    with pytest.raises(InvalidSchema, match='field "phone"'):
        check(rec(fld("phone", ["null", "string"], default="x")), [rec(NAME)], "BACKWARD")


def test_not_json_is_an_invalid_schema() -> None:
    with pytest.raises(InvalidSchema, match="not JSON"):
        check("{nope", [rec(NAME)], "BACKWARD")


def test_can_read_is_the_plain_reader_writer_question() -> None:
    assert can_read("long", "int") == []
    assert can_read("int", "long") != []


# --- properties ----------------------------------------------------------------------------------

_PRIMS = st.sampled_from(["null", "boolean", "int", "long", "float", "double", "bytes", "string"])
_TYPES = st.recursive(
    _PRIMS,
    lambda inner: st.one_of(
        st.builds(lambda t: {"type": "array", "items": t}, inner),
        st.builds(lambda t: {"type": "map", "values": t}, inner),
    ),
    max_leaves=4,
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), min_size=1, max_size=5, unique=True)
    )
    return rec(*[fld(n, draw(_TYPES)) for n in names])


@settings(max_examples=60, deadline=None)
@given(records(), st.sampled_from(LEVELS))
def test_property_a_schema_is_compatible_with_itself(schema: dict[str, Any], level: str) -> None:
    assert check(schema, [schema], level) == []


@settings(max_examples=60, deadline=None)
@given(records())
def test_property_adding_an_optional_field_is_full_compatible(schema: dict[str, Any]) -> None:
    added = {**schema, "fields": [*schema["fields"], fld("zz_added", ["null", "string"], default=None)]}
    if any(f["name"] == "zz_added" for f in schema["fields"]):
        return
    assert check(added, [schema], "FULL_TRANSITIVE") == []
