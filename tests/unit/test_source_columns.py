"""Which table columns a SQL source reads for a resource (``ResourceSpec.column_pairs``), and the install
error that names every column missing."""

from __future__ import annotations

import pytest

from connectors.errors import InstallError
from connectors.sources import ResourceSpec
from connectors.testing.records import KEY_FIELD, RESOURCE, SCHEMA

SPEC = ResourceSpec(RESOURCE, SCHEMA, KEY_FIELD)
ALL = {"id_number", "name", "gender", "birth_date", "score", "employer_code", "note"}


def test_every_present_field_is_read_under_its_own_name() -> None:
    pairs = SPEC.column_pairs(ALL, {}, "id_number", "source s")
    assert pairs == [(f, f) for f in SPEC.field_names]


def test_an_optional_field_the_table_lacks_is_left_out() -> None:
    pairs = SPEC.column_pairs(ALL - {"note"}, {}, "id_number", "source s")
    assert ("note", "note") not in pairs
    assert ("employer_code", "employer_code") in pairs


def test_mapped_columns_are_read_under_the_table_s_names() -> None:
    present = (ALL - {"name", "id_number"}) | {"full_name", "sfzh"}
    pairs = SPEC.column_pairs(present, {"name": "full_name", "id_number": "sfzh"}, "sfzh", "source s")
    assert ("name", "full_name") in pairs
    assert ("id_number", "sfzh") in pairs


def test_the_error_names_each_missing_required_mapped_and_key_column() -> None:
    present = ALL - {"score", "note", "id_number"}
    with pytest.raises(InstallError) as err:
        SPEC.column_pairs(present, {"note": "remark"}, "sfzh", "source s: table t in db")
    message = str(err.value)
    assert message.startswith("source s: table t in db has no column ")
    assert '"score" (field score)' in message  # required
    assert '"remark" (field note)' in message  # optional, but mapped on purpose
    assert '"sfzh" (business key)' in message
    assert '"id_number"' in message  # required field id_number, under its own name
