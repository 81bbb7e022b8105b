"""The generated catalog: departments, resources with their schemas, classified and masked fields."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hub.catalog.codes import CLASSIFICATION_CODES
from hub.demo.pudong.shape import MAX_FIELDS, MIN_FIELDS, Naming, Size, dump_yaml


@dataclass(frozen=True)
class Item:
    """A kind of data item: its Avro type, classification and the owner's default mask if personal."""

    name: str
    avro: Any
    cls: str
    mask: str | None = None
    filterable: bool = False


_DATE = {"type": "int", "logicalType": "date"}
_TS = {"type": "long", "logicalType": "timestamp-millis"}
ITEMS: Final = (
    Item("credit_code", "string", "public"),
    Item("entity_name", "string", "public"),
    Item("person_name", "string", "personal", "name"),
    Item("id_number", "string", "personal", "id_number"),
    Item("phone", ["null", "string"], "personal", "phone"),
    Item("home_address", ["null", "string"], "personal", "address"),
    Item("email", ["null", "string"], "personal", "email"),
    Item("birth_date", _DATE, "personal", "date_year"),
    Item("district", "string", "public", filterable=True),
    Item("street", ["null", "string"], "public", filterable=True),
    Item("status", "string", "public", filterable=True),
    Item("category", "string", "public", filterable=True),
    Item("issue_date", _DATE, "public"),
    Item("valid_until", ["null", _DATE], "public"),
    Item("authority", "string", "public"),
    Item("amount", ["null", "double"], "internal"),
    Item("headcount", ["null", "int"], "internal"),
    Item("score", ["null", "double"], "internal"),
    Item("remarks", ["null", "string"], "internal"),
    Item("registered_capital", ["null", "double"], "sensitive"),
    Item("business_address", ["null", "string"], "public"),
    Item("legal_representative", ["null", "string"], "personal", "name"),
    Item("case_summary", ["null", "string"], "secret"),
    Item("updated_at", _TS, "public"),
)

_BUREAUS: Final = (
    "发展和改革委员会",
    "经济和科技委员会",
    "商务委员会",
    "教育局",
    "科技和经济委员会",
    "公安分局",
    "民政局",
    "司法局",
    "财政局",
    "人力资源和社会保障局",
    "规划和自然资源局",
    "生态环境局",
    "建设和交通委员会",
    "农业农村委员会",
    "文化体育和旅游局",
    "卫生健康委员会",
    "退役军人事务局",
    "应急管理局",
    "审计局",
    "国有资产监督管理委员会",
    "市场监督管理局",
    "统计局",
    "医疗保障局",
    "城市管理行政执法局",
    "民防办公室",
    "税务局",
    "人民法院",
    "人民检察院",
    "住房公积金管理中心",
    "消防救援支队",
    "海关",
    "知识产权局",
    "金融工作局",
    "投资促进服务中心",
    "大数据中心",
    "档案局",
    "信访办公室",
    "机关事务管理局",
    "民族宗教事务委员会",
    "妇女联合会",
)
_STREETS: Final = (
    "潍坊新村街道",
    "陆家嘴街道",
    "周家渡街道",
    "塘桥街道",
    "上钢新村街道",
    "南码头路街道",
    "沪东新村街道",
    "金杨新村街道",
    "洋泾街道",
    "浦兴路街道",
    "东明路街道",
    "花木街道",
)
_TOWNS: Final = (
    "川沙新镇",
    "高桥镇",
    "北蔡镇",
    "合庆镇",
    "唐镇",
    "曹路镇",
    "金桥镇",
    "高行镇",
    "高东镇",
    "张江镇",
    "三林镇",
    "惠南镇",
    "周浦镇",
    "新场镇",
    "大团镇",
    "康桥镇",
    "航头镇",
    "祝桥镇",
    "泥城镇",
    "宣桥镇",
    "书院镇",
    "万祥镇",
    "老港镇",
    "南汇新城镇",
)
_INSTITUTIONS: Final = ("事务中心", "服务中心", "管理所", "监测站", "执法大队", "信息中心", "学校", "医院")
_RESOURCE_NAMES: Final = ("登记信息", "许可信息", "监管记录", "处罚信息", "统计数据", "台账", "名单", "证照")
_CLASSES: Final = tuple(sorted(CLASSIFICATION_CODES))


def generate_departments(size: Size) -> list[dict[str, Any]]:
    """Bureaus first (they own most resources), then the 36 sub-districts and towns, then institutions."""
    out: list[dict[str, Any]] = []
    for i, name in enumerate(_BUREAUS, start=1):
        out.append({"id": f"bureau-{i:02d}", "name": f"浦东新区{name}", "systems": [f"sys-{i:02d}"]})
    for i, name in enumerate((*_STREETS, *_TOWNS), start=1):
        out.append({"id": f"town-{i:02d}", "name": f"浦东新区{name}"})
    i = 0
    while len(out) < size.departments:
        i += 1
        parent = _BUREAUS[(i - 1) % len(_BUREAUS)]
        kind = _INSTITUTIONS[(i - 1) // len(_BUREAUS) % len(_INSTITUTIONS)]
        out.append({"id": f"unit-{i:03d}", "name": f"浦东新区{parent}{kind}{i:03d}"})
    return out[: size.departments]


def _field_counts(rng: random.Random, size: Size) -> list[int]:
    """Fields per resource, between MIN_FIELDS and MAX_FIELDS, summing to ``size.data_items`` exactly."""
    if not MIN_FIELDS * size.resources <= size.data_items <= MAX_FIELDS * size.resources:
        raise ValueError(
            f"{size.data_items} data items do not fit {size.resources} resources of "
            f"{MIN_FIELDS}-{MAX_FIELDS} fields"
        )
    counts = [rng.randint(MIN_FIELDS, 10) for _ in range(size.resources)]
    gap = size.data_items - sum(counts)
    step = 1 if gap > 0 else -1
    while gap:
        i = rng.randrange(size.resources)
        if MIN_FIELDS <= counts[i] + step <= MAX_FIELDS:
            counts[i] += step
            gap -= step
    return counts


def _resource(
    rng: random.Random, code: str, owner: str, fields: int, index: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(catalog entry, Avro schema) of one resource with ``fields`` fields, the key first."""
    items = rng.sample(ITEMS, fields - 1)
    record = code.replace("-", "_").lower()
    schema = {
        "type": "record",
        "name": record,
        "namespace": "gov.pudong.catalog",
        "fields": [{"name": "record_no", "type": "string"}]
        + [
            {"name": it.name, "type": it.avro, **({"default": None} if _optional(it.avro) else {})}
            for it in items
        ],
    }
    conditional = index > 0 and rng.random() < 0.45  # the first, the court's credit list, is unconditional
    entry: dict[str, Any] = {
        "code": code,
        "name": f"{_RESOURCE_NAMES[index % len(_RESOURCE_NAMES)]} {code}",
        "owner": owner,
        "schema": f"schemas/{code}.avsc",
        "key": "record_no",
        "share": "conditional" if conditional else "unconditional",
        "update_cycle": rng.choice(("realtime", "realtime", "hourly", "daily")),
        "fields": {"record_no": "public", **{it.name: it.cls for it in items}},
    }
    if conditional:
        entry["legal_basis"] = "《上海市公共数据开放与共享管理办法》 有条件共享"
    masks = {it.name: it.mask for it in items if it.mask}
    if masks:
        entry["default_masks"] = masks
    filterable = [it.name for it in items if it.filterable]
    if filterable:
        entry["filterable"] = filterable
    return entry, schema


def _optional(avro: Any) -> bool:
    return isinstance(avro, list) and avro[0] == "null"


def write_catalog(
    out: Path, rng: random.Random, size: Size, naming: Naming, ids: list[str]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The catalog entries (catalog/<class>.yaml) and their schemas (schemas/<code>.avsc)."""
    # Bureaus own most resources; towns and institutions some.
    owner_weights = [8 if d.startswith("bureau-") else 2 if d.startswith("town-") else 1 for d in ids]
    court = f"bureau-27{naming.suffix}"  # 人民法院, owner of the city-wide debtor list
    entries: list[dict[str, Any]] = []
    schemas: dict[str, dict[str, Any]] = {}
    sequence = dict.fromkeys(_CLASSES, 0)
    for index, fields in enumerate(_field_counts(rng, size)):
        cls = "CRD" if index == 0 else _CLASSES[index % len(_CLASSES)]
        sequence[cls] += 1
        code = f"{naming.region}-{cls}-{sequence[cls]:04d}"
        owner = court if index == 0 and court in ids else rng.choices(ids, owner_weights)[0]
        entry, schema = _resource(rng, code, owner, fields, index)
        if index == 0:
            entry["name"] = "失信被执行人名单 (dishonest judgment debtors)"
        entries.append(entry)
        schemas[code] = schema
    for cls in _CLASSES:
        mine = [e for e in entries if e["code"].split("-")[1] == cls]
        if mine:
            dump_yaml(out / "catalog" / f"{naming.files}{cls.lower()}.yaml", {"resources": mine})
    (out / "schemas").mkdir(parents=True, exist_ok=True)
    for code, schema in schemas.items():
        (out / "schemas" / f"{code}.avsc").write_text(
            json.dumps(schema, ensure_ascii=False, indent=1), encoding="utf-8"
        )
    return entries, schemas
