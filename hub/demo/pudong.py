"""A config directory of Pudong's size: 300 departments, 17,000 data items, 10,000 subscriptions.

浦东新区's exchange carries about 300 departments' systems (district bureaus, the 36 sub-district offices
and towns, and their public institutions), a catalog of 17,000 data items (信息项) in ~2,600 shared
resources, and on the order of 10,000 standing subscriptions. This module writes a config directory of
that size so that `xhub validate`, `plan`, `apply` and a hub can be measured at it (tests/bench/pudong.py):

    python -m hub.demo.pudong OUT_DIR [--seed N] [--scale 0.1] [--bootstrap HOST:PORT]

Deterministic: the same seed and size write the same files, byte for byte. What it writes:

- ``hubs.yaml``: one hub, ``pudong``;
- ``departments/``: bureaus, the 12 sub-districts (街道) and 24 towns (镇), public institutions;
- ``catalog/<class>.yaml`` and ``schemas/<code>.avsc``: each resource its own Avro schema of 3 to 14
  fields (a business key, then data items drawn from a pool of typical ones: names, ID numbers, phones,
  addresses, dates, districts, amounts ...), every field classified, every personal field with the
  owner's default mask, district/status/category filterable; about half the resources conditional;
- ``subscriptions/<subscriber>.yaml``: popularity follows a Zipf-like law, so a few city-wide lists (the
  first is the court's 失信被执行人名单) are read by every other department and most resources by a few;
  one in five subscriptions filters rows, one in eight asks for a stronger mask;
- ``grants/<owner>/subscriptions.yaml``: the owner's answer to every subscription of a conditional
  resource (a few refused, with reasons), as a conditional resource needs one.

The figures measured on it are in the README ("How much one hub carries").
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from hub.catalog.codes import CLASSIFICATION_CODES

HUB = "pudong"
SECRET_ENV = "XHUB_PUDONG_SECRET"  # noqa: S105 - the name of the variable, not a secret
AUDIT_KEY_ENV = "XHUB_PUDONG_AUDIT_KEY"


@dataclass(frozen=True)
class Size:
    """How big a generated catalog is."""

    departments: int
    resources: int
    data_items: int  # fields over all resources, keys included
    subscriptions: int

    def scaled(self, factor: float) -> Size:
        """The same shape at ``factor`` of the size (at least 10 departments and resources)."""
        if factor == 1:
            return self
        return Size(
            departments=max(10, round(self.departments * factor)),
            resources=max(10, round(self.resources * factor)),
            data_items=max(10 * 4, round(self.data_items * factor)),
            subscriptions=max(10, round(self.subscriptions * factor)),
        )


PUDONG: Final = Size(departments=300, resources=2600, data_items=17_000, subscriptions=10_000)

MIN_FIELDS, MAX_FIELDS = 3, 14  # per resource, key included


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


@dataclass(frozen=True)
class Counts:
    """What a generated directory holds (the unit test checks them against the files)."""

    departments: int
    resources: int
    data_items: int
    subscriptions: int
    grants: int
    conditional_resources: int
    max_subscriptions_per_resource: int


def _departments(size: Size) -> list[dict[str, Any]]:
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


def _popularity(rng: random.Random, resources: int, subscriptions: int, cap: int) -> list[int]:
    """Subscriptions per resource: Zipf-like (rank^-0.9), at most ``cap`` each, ``subscriptions`` in all."""
    if subscriptions > cap * resources:
        raise ValueError(f"{subscriptions} subscriptions do not fit {resources} resources of {cap} readers")
    weights = [1 / (rank + 1) ** 0.9 for rank in range(resources)]
    total = sum(weights)
    counts = [min(cap, math.floor(w / total * subscriptions)) for w in weights]
    counts[0] = min(cap, subscriptions)  # the city-wide list: every other department reads it
    while sum(counts) > subscriptions:
        counts[counts.index(max(counts[1:]), 1)] -= 1
    while (short := subscriptions - sum(counts)) > 0:
        for i in rng.sample(range(resources), min(short, resources)):
            if counts[i] < cap:
                counts[i] += 1
    return counts


def _subscription(
    rng: random.Random, sid: str, subscriber: str, entry: dict[str, Any], schema: dict[str, Any]
) -> dict[str, Any]:
    deliverable = [
        f["name"] for f in schema["fields"] if entry["fields"][f["name"]] not in ("secret", "sensitive")
    ]
    wanted = [
        "record_no",
        *rng.sample(deliverable[1:], rng.randint(min(1, len(deliverable) - 1), len(deliverable) - 1)),
    ]
    sub: dict[str, Any] = {
        "id": sid,
        "subscriber": subscriber,
        "resource": entry["code"],
        "hub": HUB,
        "fields": wanted,
        "purpose": "履职需要 (duties of the subscribing department)",
    }
    filterable = entry.get("filterable", [])
    if filterable and rng.random() < 0.2:
        name = rng.choice(filterable)
        value = {"district": "浦东新区", "status": "存续", "category": "A"}.get(name, "花木街道")
        sub["filter"] = f'{name} == "{value}"'
    stronger = [
        n
        for n in wanted
        if entry.get("default_masks", {}).get(n) in ("name", "id_number", "phone", "address", "email")
    ]
    if stronger and rng.random() < 0.125:
        sub["masks"] = {rng.choice(stronger): "pseudonym"}
    return sub


def _grant(rng: random.Random, sub: dict[str, Any], owner_name: str) -> dict[str, Any]:
    grant: dict[str, Any] = {
        "subscription": sub["id"],
        "resource": sub["resource"],
        "approver": owner_name,
        "reference": f"浦数共〔2026〕{rng.randint(1, 9999)}号",
        "decided_at": "2026-09-01T10:00:00+08:00",
    }
    if rng.random() < 0.05:
        grant["decision"] = "refused"
        grant["reason"] = "申请用途与所需数据项不相符 (purpose does not match the data items)"
        grant["legal_basis"] = (
            "《政务信息资源共享管理暂行办法》(国发〔2016〕51号) 第十条"  # a refusal names its law
        )
    else:
        grant["decision"] = "approved"
        grant["fields"] = list(sub["fields"])
    return grant


def _dump(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's, where installed: 10x faster
    path.write_text(
        yaml.dump(doc, Dumper=dumper, allow_unicode=True, sort_keys=False, width=200), encoding="utf-8"
    )


@dataclass(frozen=True)
class Naming:
    """Names of the generated parties, so several generated catalogs can share one cluster or directory.

    ``suffix`` is appended to every department id (topic names derive from them), ``region`` starts every
    resource code (PD = 浦东新区), ``hub`` names the one hub that carries every subscription.
    """

    hub: str = HUB
    suffix: str = ""
    region: str = "PD"
    files: str = ""  # prefix of the generated file names, so they sit beside others in one directory


def write_pudong_config(
    out: Path,
    *,
    seed: int = 0,
    size: Size = PUDONG,
    bootstrap: str = "127.0.0.1:9092",
    naming: Naming = Naming(),
    hubs_file: bool = True,
) -> Counts:
    """Write a config directory of ``size`` into ``out``.

    With ``hubs_file`` (the default) ``out`` must be empty or absent and gets its own hubs.yaml; without,
    the catalog, departments, subscriptions and grants are added to the config directory ``out`` whose
    hubs.yaml names ``naming.hub`` (the benchmark adds them to its small catalog that way).
    """
    out = Path(out)
    if hubs_file and out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: give a new folder for the generated config")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed; nothing secret
    if hubs_file:
        _dump(out / "hubs.yaml", _hubs(bootstrap, naming.hub))
    departments = _departments(size)
    for dept in departments:
        dept["id"] += naming.suffix
        dept["principal"] = f"User:{dept['id']}"
    _dump(out / "departments" / f"{naming.files}departments.yaml", {"departments": departments})
    names = {d["id"]: d["name"] for d in departments}
    entries, schemas = _write_catalog(out, rng, size, naming, list(names))
    readers, grants = _write_subscriptions(
        out,
        rng,
        naming=naming,
        entries=entries,
        schemas=schemas,
        names=names,
        subscriptions=size.subscriptions,
    )
    return Counts(
        departments=len(departments),
        resources=len(entries),
        data_items=sum(len(e["fields"]) for e in entries),
        subscriptions=sum(readers),
        grants=grants,
        conditional_resources=sum(e["share"] == "conditional" for e in entries),
        max_subscriptions_per_resource=max(readers),
    )


def _write_catalog(
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
            _dump(out / "catalog" / f"{naming.files}{cls.lower()}.yaml", {"resources": mine})
    (out / "schemas").mkdir(parents=True, exist_ok=True)
    for code, schema in schemas.items():
        (out / "schemas" / f"{code}.avsc").write_text(
            json.dumps(schema, ensure_ascii=False, indent=1), encoding="utf-8"
        )
    return entries, schemas


def _write_subscriptions(
    out: Path,
    rng: random.Random,
    *,
    naming: Naming,
    entries: list[dict[str, Any]],
    schemas: dict[str, dict[str, Any]],
    names: dict[str, str],
    subscriptions: int,
) -> tuple[list[int], int]:
    """Subscriptions (subscriptions/<subscriber>.yaml) and the owners' answers to the conditional ones.

    Returns the readers of each resource and the number of grants.
    """
    ids = list(names)
    by_subscriber: dict[str, list[dict[str, Any]]] = {}
    by_owner: dict[str, list[dict[str, Any]]] = {}
    readers = _popularity(rng, len(entries), subscriptions, cap=len(ids) - 1)
    for entry, count in zip(entries, readers, strict=True):
        others = [d for d in ids if d != entry["owner"]]
        for subscriber in sorted(rng.sample(others, count)):
            sid = f"{subscriber}-{entry['code'].lower()}"
            sub = _subscription(rng, sid, subscriber, entry, schemas[entry["code"]])
            sub["hub"] = naming.hub
            by_subscriber.setdefault(subscriber, []).append(sub)
            if entry["share"] == "conditional":
                by_owner.setdefault(entry["owner"], []).append(_grant(rng, sub, names[entry["owner"]]))
    for subscriber, subs in sorted(by_subscriber.items()):
        _dump(out / "subscriptions" / f"{naming.files}{subscriber}.yaml", {"subscriptions": subs})
    for owner, grants in sorted(by_owner.items()):
        _dump(out / "grants" / owner / f"{naming.files}subscriptions.yaml", {"grants": grants})
    return readers, sum(len(g) for g in by_owner.values())


def _hubs(bootstrap: str, hub: str) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": bootstrap},
        "registry": {},
        "timezone": "Asia/Shanghai",
        "hubs": [
            {
                "name": hub,
                "description": "浦东新区公共数据共享交换枢纽 (generated at Pudong's size)",
                "pseudonym_secret_env": SECRET_ENV,
                "audit_key_env": AUDIT_KEY_ENV,
                # 2,600 source topics already spread a hub's work over its workers; one partition each
                # keeps a Pudong apply at ~13,200 partitions (README: "How much one hub carries").
                "partitions": 1,
            }
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hub.demo.pudong", description="write a config directory of Pudong's size"
    )
    parser.add_argument("out_dir", type=Path, help="new folder to write (must be empty or absent)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of Pudong's size (default 1)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers for hubs.yaml")
    args = parser.parse_args(argv)
    try:
        counts = write_pudong_config(
            args.out_dir, seed=args.seed, size=PUDONG.scaled(args.scale), bootstrap=args.bootstrap
        )
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.out_dir}: {counts.departments} departments, {counts.resources} resources "
        f"({counts.conditional_resources} conditional), {counts.data_items} data items, "
        f"{counts.subscriptions} subscriptions (at most {counts.max_subscriptions_per_resource} on one "
        f"resource), {counts.grants} grants; check it with: "
        f"{SECRET_ENV}=... {AUDIT_KEY_ENV}=... xhub validate {args.out_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
