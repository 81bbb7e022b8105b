"""Masks: documented examples, edge cases, output types and properties (hypothesis)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.errors import HubError, InvalidRecord
from hub.policy.errors import MaskRuntimeError, PolicyError
from hub.policy.masks import MASK_KINDS, Mask, build_mask

SECRET = b"unit-test-secret-0123456789"
OTHER_SECRET = b"another-secret-9876543210"


def mask(kind: str, **params: Any) -> Mask:
    return build_mask(kind, secret=SECRET, params=params)


# --- the examples documented in the module docstring ---------------------------------------------


@pytest.mark.parametrize(
    ("kind", "raw", "masked"),
    [
        ("id_number", "310115198503071234", "310115********1234"),
        ("id_number", "31011519850307123X", "310115********123X"),
        ("id_number", "310115850307123", "310115*****7123"),  # 15-digit legacy number
        ("phone", "13812345678", "138****5678"),
        ("phone", 13812345678, "138****5678"),  # a phone stored as a long
        ("phone", "58881234", "****1234"),  # too short to show both ends
        ("phone", "110", "***"),
        ("name", "张三丰", "张**"),
        ("name", "李四", "李*"),
        ("name", "欧阳娜娜", "欧阳**"),
        ("name", "欧阳", "欧*"),
        ("name", "张", "*"),
        ("name", "John Smith", "J*********"),
        ("name", "", ""),
        ("address", "上海市浦东新区世纪大道100号3号楼1201室", "上海市浦东新区****"),
        ("address", "浙江省杭州市西湖区文三路1号", "浙江省杭州市西湖区****"),
        ("address", "浙江省衢州市江山市贺村镇", "浙江省衢州市江山市****"),
        ("address", "内蒙古自治区呼和浩特市新城区某路", "内蒙古自治区呼和浩特市新城区****"),
        ("address", "云南省大理白族自治州大理市下关镇", "云南省大理白族自治州大理市****"),
        ("address", "香港特别行政区中西区皇后大道", "香港特别行政区中西区****"),
        ("address", "浦东新区世纪大道100号", "浦东新区****"),
        ("address", "北京市通州区新华路1号", "北京市通州区****"),
        ("address", "上海市浦东新区", "上海市****"),  # only divisions: one level less
        ("address", "世纪大道100号3号楼1201室", "世纪大道10****"),  # no division: first 6
        ("address", "某某小区3号楼", "某某小****"),  # a housing estate is not a district
        ("address", "Room 1", "Roo****"),
        ("email", "zhangsan@example.gov.cn", "z***@example.gov.cn"),
        ("email", "a@x.cn", "a***@x.cn"),
        ("email", "not-an-email", "n***"),
        ("email", "@example.cn", "@***"),
        ("date_year", "1985-03-07", "1985"),
        ("date_year", 5544, "1985"),  # Avro date: days since 1970-01-01
        ("date_year", dt.date(1985, 3, 7), "1985"),
        ("date_year", dt.datetime(1985, 3, 7, 8, 30, tzinfo=dt.UTC), "1985"),
        ("date_year", "1985", "1985"),
        ("date_month", "1985-03-07", "1985-03"),
        ("date_month", "1985-03-07T08:30:00Z", "1985-03"),
        ("date_month", 5544, "1985-03"),
        ("date_month", dt.date(1985, 3, 7), "1985-03"),
        ("date_month", -1, "1969-12"),
        ("drop", "anything", None),
    ],
)
def test_documented_examples(kind: str, raw: Any, masked: Any) -> None:
    m = mask(kind)
    assert m.apply(raw) == masked
    assert m.function(raw) == masked


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_none_passes_through(kind: str) -> None:
    assert mask(kind).apply(None) is None


def test_keep_params_change_the_visible_ends() -> None:
    assert mask("id_number", keep_first=3, keep_last=4).apply("310115198503071234") == "310***********1234"
    assert mask("id_number", keep_first=0, keep_last=0).apply("310115198503071234") == "*" * 18
    assert mask("address", fallback_keep=2).apply("世纪大道100号") == "世纪****"


def test_pseudonym_is_hmac_sha256_of_secret_and_value() -> None:
    value = "310115198503071234"
    expected = hmac.new(SECRET, value.encode(), hashlib.sha256).hexdigest()[:32]
    assert mask("pseudonym").apply(value) == expected


def test_pseudonym_joins_across_fields_and_representations() -> None:
    m = mask("pseudonym")
    # Keyed only on the value: the same phone as text or as a number gives the same pseudonym.
    assert m.apply("13812345678") == m.apply(13812345678)
    assert m.apply(b"abc") == m.apply("abc")
    assert re.fullmatch(r"[0-9a-f]{32}", m.apply("x"))
    assert mask("pseudonym", length=16).apply("x") == m.apply("x")[:16]


def test_pseudonym_scope_unlinks_subscriptions() -> None:
    plain, scoped = mask("pseudonym"), mask("pseudonym", scope="tax-debtors")
    assert plain.apply("310115198503071234") != scoped.apply("310115198503071234")
    assert scoped.apply("x") == mask("pseudonym", scope="tax-debtors").apply("x")
    assert "tax-debtors" in scoped.describe()


def test_pseudonym_secret_never_shows() -> None:
    m = mask("pseudonym")
    text = repr(m) + str(dict(m.params)) + m.describe()
    assert SECRET.decode() not in text
    assert re.fullmatch(r"[0-9a-f]{8}", m.params["key_id"])
    assert m.params["key_id"] in m.describe()
    assert build_mask("pseudonym", secret=OTHER_SECRET).params["key_id"] != m.params["key_id"]


def test_pseudonym_key_id_must_match_the_secret() -> None:
    m = mask("pseudonym")
    again = Mask("pseudonym", m.params, secret=SECRET)
    assert again == m
    assert again.apply("v") == m.apply("v")
    with pytest.raises(PolicyError, match="does not match the hub secret"):
        Mask("pseudonym", m.params, secret=OTHER_SECRET)


@pytest.mark.parametrize(
    ("secret", "message"),
    [(None, "needs the hub secret"), (b"short", "at least 16 bytes")],
)
def test_pseudonym_needs_a_real_secret(secret: bytes | None, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        build_mask("pseudonym", secret=secret)


def test_build_mask_rejects_unknown_kinds_and_params() -> None:
    with pytest.raises(PolicyError, match=r'unknown mask "phon" \(masks: id_number, phone'):
        build_mask("phon")
    with pytest.raises(PolicyError, match='unknown parameter "keep"'):
        build_mask("phone", params={"keep": 3})
    with pytest.raises(PolicyError, match='"keep_first" must be an integer from 0 to 32'):
        build_mask("phone", params={"keep_first": -1})
    with pytest.raises(PolicyError, match='"length" must be an integer from 16 to 64'):
        build_mask("pseudonym", secret=SECRET, params={"length": 8})
    with pytest.raises(PolicyError, match='"scope" must be text'):
        build_mask("pseudonym", secret=SECRET, params={"scope": 3})
    assert issubclass(PolicyError, HubError)


def test_mask_is_a_frozen_comparable_value() -> None:
    assert mask("phone") == mask("phone")
    assert mask("phone") != mask("phone", keep_first=2)
    assert hash(mask("phone")) == hash(mask("phone"))
    assert mask("phone").params == {"keep_first": 3, "keep_last": 4}
    with pytest.raises(AttributeError):
        mask("phone").kind = "name"  # type: ignore[misc]
    with pytest.raises(TypeError):
        mask("phone").params["keep_first"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("kind", "value", "why"),
    [
        ("date_year", "March 1985", "not an ISO-8601 date"),
        ("date_month", "1985-13-01", "not an ISO-8601 date"),
        ("date_month", "1985", "not an ISO-8601 date"),
        ("date_year", 10**9, "out of range"),
        ("date_year", [1985], "cannot apply to a list"),
        ("phone", ["13812345678"], "cannot apply to a list"),
        ("name", True, "cannot apply to a bool"),
        ("pseudonym", {"a": 1}, "cannot apply to a dict"),
    ],
)
def test_unmaskable_values_are_invalid_records(kind: str, value: Any, why: str) -> None:
    with pytest.raises(MaskRuntimeError, match=why) as info:
        mask(kind).apply(value)
    err = info.value
    assert isinstance(err, InvalidRecord)
    assert err.reason == "mask_failed"
    assert err.kind == kind
    assert str(value) not in err.detail  # never the personal value itself


@pytest.mark.parametrize(
    ("avro_type", "delivered"),
    [
        ("string", "string"),
        (["null", "string"], ["null", "string"]),
        (["string", "null"], ["string", "null"]),
        (["null", "long"], ["null", "string"]),
        ({"type": "string", "logicalType": "uuid"}, "string"),
        ("com.example.Named", "string"),  # a named type defined elsewhere: not checked
    ],
)
def test_text_masks_deliver_strings_keeping_optionality(avro_type: Any, delivered: Any) -> None:
    for kind in ("id_number", "phone", "name", "address", "email", "pseudonym"):
        assert mask(kind).output_type(avro_type) == delivered


def test_date_masks_turn_dates_into_strings() -> None:
    date_type = {"type": "int", "logicalType": "date"}
    ts_type = {"type": "long", "logicalType": "timestamp-millis"}
    for kind in ("date_year", "date_month"):
        assert mask(kind).output_type(date_type) == "string"
        assert mask(kind).output_type(["null", date_type]) == ["null", "string"]
        assert mask(kind).output_type(ts_type) == "string"
        assert mask(kind).output_type("string") == "string"


def test_pseudonym_turns_any_primitive_into_string() -> None:
    for avro_type in ("long", "bytes", "double", "boolean", {"type": "fixed", "name": "F", "size": 4}):
        assert mask("pseudonym").output_type(avro_type) == "string"


def test_drop_removes_the_field() -> None:
    assert mask("drop").output_type(["null", "string"]) is None
    assert mask("drop").describe().startswith("drop")


@pytest.mark.parametrize(
    ("kind", "avro_type"),
    [
        ("date_year", "boolean"),
        ("date_month", "int"),  # a plain int is not a date
        ("phone", "double"),
        ("name", {"type": "record", "name": "R", "fields": []}),
        ("pseudonym", {"type": "array", "items": "string"}),
        ("email", ["null", {"type": "map", "values": "string"}]),
    ],
)
def test_mask_on_an_unsuitable_type_is_a_policy_error(kind: str, avro_type: Any) -> None:
    with pytest.raises(PolicyError, match=f'mask "{kind}" cannot apply to Avro type'):
        mask(kind).output_type(avro_type)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_every_mask_describes_itself(kind: str) -> None:
    assert mask(kind).describe().startswith(kind)


# --- properties ------------------------------------------------------------------------------------

# "*" is the mask character: a raw value made of it would trivially "appear" in its own mask.
TEXT = st.text(alphabet=st.characters(exclude_characters="*", codec="utf-8"), min_size=2)
CHINESE = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=2, max_size=30)
EMAILS = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._", min_size=1, max_size=20),
    st.from_regex(r"[a-z]{1,10}\.(gov\.)?cn", fullmatch=True),
)


@settings(max_examples=300)
@given(kind=st.sampled_from(["id_number", "phone", "name", "address", "email"]), raw=TEXT | CHINESE)
def test_masked_text_never_contains_the_raw_value(kind: str, raw: str) -> None:
    masked = mask(kind).apply(raw)
    assert raw not in masked
    assert mask(kind).apply(raw) == masked  # deterministic


@given(raw=EMAILS)
def test_masked_email_never_contains_the_address(raw: str) -> None:
    masked = mask("email").apply(raw)
    assert raw not in masked
    assert masked.endswith(raw[raw.rindex("@") :])


# long integers only: a short number can appear in 32 hex characters by chance
@given(raw=st.text(min_size=8) | st.integers(min_value=10**9))
def test_pseudonym_properties(raw: str | int) -> None:
    one, same, other = mask("pseudonym"), mask("pseudonym"), build_mask("pseudonym", secret=OTHER_SECRET)
    value = one.apply(raw)
    assert value == same.apply(raw)  # same secret, same pseudonym: subscribers can join
    assert value != other.apply(raw)  # another hub secret, another pseudonym
    assert str(raw) not in value
    assert len(value) == 32


@given(day=st.dates())
def test_date_masks_agree_across_representations(day: dt.date) -> None:
    days = (day - dt.date(1970, 1, 1)).days
    for kind, expected in (
        ("date_year", f"{day.year:04d}"),
        ("date_month", f"{day.year:04d}-{day.month:02d}"),
    ):
        m = mask(kind)
        assert m.apply(day) == m.apply(days) == m.apply(day.isoformat()) == expected
