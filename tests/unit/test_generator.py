"""The demo data generator: valid identifiers, consistent records, reproducible from a seed."""

from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.validation import RecordValidator, is_valid_citizen_id, is_valid_credit_code
from hub.demo.generator import (
    business_licence,
    dishonest_debtor,
    legal_entity,
    make_faker,
    person,
    real_estate,
    records,
)
from hub.demo.identities import DISTRICTS, LATEST_DATE, SHANGHAI_DISTRICTS, citizen_id, credit_code

DATE = {"type": "int", "logicalType": "date"}
OPTIONAL_DATE = ["null", DATE]


def schema(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": [{"name": k, "type": t} for k, t in fields.items()]}


# What the resource schemas must accept: the generator's keys and Avro types, checked end to end.
VALIDATORS = {
    "person": RecordValidator(
        schema(
            "Person",
            {
                "id_number": "string",
                "name": "string",
                "gender": {"type": "enum", "name": "Gender", "symbols": ["M", "F"]},
                "birth_date": DATE,
                "phone": "string",
                "address": "string",
                "district": "string",
                "email": "string",
            },
        ),
        "id_number",
        "citizen_id",
    ),
    "legal_entity": RecordValidator(
        schema(
            "LegalEntity",
            {
                "credit_code": "string",
                "name": "string",
                "legal_representative": "string",
                "legal_rep_id_number": "string",
                "registered_capital": "double",
                "established_date": DATE,
                "address": "string",
                "district": "string",
                "business_scope": "string",
                "status": "string",
            },
        ),
        "credit_code",
        "credit_code",
        checks={"legal_rep_id_number": "citizen_id"},
    ),
    "business_licence": RecordValidator(
        schema(
            "BusinessLicence",
            {
                "licence_no": "string",
                "credit_code": "string",
                "entity_name": "string",
                "licence_type": "string",
                "issue_date": DATE,
                "valid_until": OPTIONAL_DATE,
                "issuing_authority": "string",
            },
        ),
        "licence_no",
        "any",
        checks={"credit_code": "credit_code"},
    ),
    "dishonest_debtor": RecordValidator(
        schema(
            "DishonestDebtor",
            {
                "case_no": "string",
                "debtor_type": {"type": "enum", "name": "DebtorType", "symbols": ["person", "entity"]},
                "debtor_id": "string",
                "debtor_name": "string",
                "court": "string",
                "obligation": "string",
                "performance_status": "string",
                "publish_date": DATE,
                "district": "string",
            },
        ),
        "case_no",
        "any",
    ),
    "real_estate": RecordValidator(
        schema(
            "RealEstate",
            {
                "cert_no": "string",
                "owner_id_number": "string",
                "owner_name": "string",
                "address": "string",
                "district": "string",
                "area_m2": "double",
                "use": "string",
                "registered_date": DATE,
            },
        ),
        "cert_no",
        "any",
    ),
}


@given(
    st.integers(0, 2**32),
    st.tuples(st.integers(1900, 2010), st.integers(0, 30)).map(lambda t: (t[0], t[0] + t[1])),
    st.sampled_from([None, *(d.code for d in SHANGHAI_DISTRICTS), "110105"]),
    st.sampled_from([None, "M", "F"]),
)
def test_citizen_ids_are_valid_and_as_asked(
    seed: int, years: tuple[int, int], area: str | None, gender: str | None
) -> None:
    value = citizen_id(random.Random(seed), years, area, gender=gender)  # type: ignore[arg-type]
    assert is_valid_citizen_id(value)
    assert years[0] <= int(value[6:10]) <= years[1]
    if area is not None:
        assert value[:6] == area
    if gender is not None:
        assert int(value[16]) % 2 == (1 if gender == "M" else 0)


@given(st.integers(0, 2**32), st.sampled_from([d.code for d in SHANGHAI_DISTRICTS]))
def test_credit_codes_are_valid(seed: int, area: str) -> None:
    value = credit_code(random.Random(seed), area)
    assert is_valid_credit_code(value)
    assert value[:2] == "91"
    assert value[2:8] == area


def test_people_are_consistent_with_their_id_numbers() -> None:
    fake = make_faker(1)
    for _ in range(300):
        p = person(fake)
        assert is_valid_citizen_id(p["id_number"])
        assert p["gender"] == ("M" if int(p["id_number"][16]) % 2 else "F")
        assert p["birth_date"] == dt.date.fromisoformat(p["birth_date"]).isoformat()
        assert p["birth_date"].replace("-", "") == p["id_number"][6:14]
        assert re.fullmatch(r"1[3-9]\d{9}", p["phone"])
        assert p["district"] in DISTRICTS
        assert p["address"].startswith(f"上海市{p['district']}")
        assert re.fullmatch(r"[\w.]+@[\w.]+\.\w+", p["email"])
        assert 2 <= len(p["name"]) <= 4


def test_entities_have_valid_codes_and_representatives() -> None:
    fake = make_faker(2)
    for _ in range(200):
        e = legal_entity(fake)
        assert is_valid_credit_code(e["credit_code"])
        assert is_valid_citizen_id(e["legal_rep_id_number"])
        assert isinstance(e["registered_capital"], float)
        assert e["registered_capital"] > 0
        assert e["name"].startswith("上海")
        assert e["name"].endswith("公司")
        assert e["status"] in ("存续", "注销", "吊销")
        assert e["district"] in DISTRICTS
        assert e["credit_code"][2:8] == next(d.code for d in SHANGHAI_DISTRICTS if d.name == e["district"])


def test_licences_debtors_and_properties_refer_to_their_subject() -> None:
    fake = make_faker(3)
    for _ in range(200):
        p, e = person(fake), legal_entity(fake)
        licence = business_licence(fake, e)
        assert licence["credit_code"] == e["credit_code"]
        assert licence["entity_name"] == e["name"]
        assert e["established_date"] <= licence["issue_date"] <= LATEST_DATE.isoformat()
        if licence["valid_until"] is not None:
            assert licence["valid_until"] > licence["issue_date"]
        assert licence["issuing_authority"].startswith("上海市")

        for subject, kind, subject_id in ((p, "person", p["id_number"]), (e, "entity", e["credit_code"])):
            debtor = dishonest_debtor(fake, subject)
            assert (debtor["debtor_type"], debtor["debtor_id"], debtor["debtor_name"]) == (
                kind,
                subject_id,
                subject["name"],
            )
            match = re.fullmatch(r"\((\d{4})\)沪(\d{4})执(\d+)号", debtor["case_no"])
            assert match is not None
            court_district = next(d for d in SHANGHAI_DISTRICTS if d.name == debtor["district"])
            assert match.group(2) == court_district.code[2:]
            assert debtor["court"] == f"上海市{debtor['district']}人民法院"
            assert match.group(1) <= debtor["publish_date"][:4]
            assert debtor["publish_date"] <= LATEST_DATE.isoformat()

            estate = real_estate(fake, subject)
            assert estate["owner_id_number"] == subject_id
            assert estate["owner_name"] == subject["name"]
            assert re.fullmatch(r"沪\(\d{4}\)\w字不动产权第\d{6}号", estate["cert_no"])
            assert estate["cert_no"][2:6] == estate["registered_date"][:4]
            assert estate["area_m2"] > 0
            assert estate["district"] in DISTRICTS


@pytest.mark.parametrize("kind", list(VALIDATORS))
def test_records_fit_their_avro_schemas(kind: str) -> None:
    validator = VALIDATORS[kind]
    for record in records(kind, 100, seed=4):  # type: ignore[arg-type]
        validator.validate(record)


@pytest.mark.parametrize("kind", list(VALIDATORS))
def test_same_seed_same_records_on_any_day(kind: str) -> None:
    first = list(records(kind, 20, seed=5))  # type: ignore[arg-type]
    assert first == list(records(kind, 20, seed=5))  # type: ignore[arg-type]
    assert first != list(records(kind, 20, seed=6))  # type: ignore[arg-type]


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown record kind"):
        next(records("spaceship", 1))  # type: ignore[arg-type]
