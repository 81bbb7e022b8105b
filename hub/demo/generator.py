"""Synthetic, realistic-looking records for the demo, the benchmarks and tests.

Names, streets, phone numbers, e-mail user names and company name stems come from Faker's ``zh_CN``
locale; ID numbers and credit codes come from ``hub.demo.identities`` so that they pass GB 11643 and
GB 32100 (with a GB 11714 organisation code inside) and agree with the record around them (gender and
birth date match the ID number, the court matches the district). Everything is drawn from one seeded
``random.Random`` (``fake.random``) and dates come from a fixed window, so a seed reproduces the same
data on any day. Dates are ISO strings; the sidecar validator turns them into Avro logical types.

Every person, business and court case here is fictitious: any match with a real one is chance.

Example:
    >>> fake = make_faker(7)
    >>> p = person(fake)
    >>> debtor = dishonest_debtor(fake, p)
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from hub.demo.identities import (
    DISTRICT_BY_CODE,
    DISTRICT_BY_NAME,
    LATEST_DATE,
    SHANGHAI_BORN,
    SHANGHAI_DISTRICTS,
    District,
    birth_date_of,
    citizen_id,
    credit_code,
    date_between,
)

if TYPE_CHECKING:
    from faker import Faker

_INDUSTRIES: Final = (
    # (name part, business scope items): Faker zh_CN has only four company suffixes, all IT.
    (
        "科技",
        ("技术开发、技术咨询、技术服务、技术转让", "软件开发", "计算机系统集成", "信息系统运行维护服务"),
    ),
    ("贸易", ("货物进出口", "技术进出口", "日用百货销售", "五金产品批发", "电子产品销售")),
    ("餐饮管理", ("餐饮服务", "食品经营", "餐饮管理", "外卖递送服务")),
    ("建筑工程", ("建设工程施工", "建筑装饰材料销售", "园林绿化工程施工", "工程管理服务")),
    ("物流", ("道路货物运输（不含危险货物）", "国内货物运输代理", "仓储服务（不含危险化学品）", "装卸搬运")),
    ("生物医药", ("医学研究和试验发展", "第二类医疗器械销售", "药品零售", "生物化工产品技术研发")),
    ("文化传播", ("组织文化艺术交流活动", "广告设计、代理", "会议及展览服务", "电影摄制服务")),
    ("房地产开发", ("房地产开发经营", "物业管理", "住房租赁", "非居住房地产租赁")),
    ("企业管理咨询", ("企业管理咨询", "市场营销策划", "财务咨询", "人力资源服务（不含职业中介活动）")),
)
_COMPANY_FORMS: Final = (("有限公司", 80), ("股份有限公司", 8), ("有限责任公司", 12))
_SCOPE_TAIL: Final = "（依法须经批准的项目，经相关部门批准后方可开展经营活动）"
_ENTITY_STATUS: Final = (("存续", 85), ("注销", 10), ("吊销", 5))
_LICENCE_TYPES: Final = (
    # (licence type, weight, issuing department, validity in years or None for long-term)
    ("营业执照", 50, "市场监督管理局", None),
    ("食品经营许可证", 20, "市场监督管理局", 5),
    ("药品经营许可证", 5, "市场监督管理局", 5),
    ("道路运输经营许可证", 10, "交通委员会", 4),
    ("排污许可证", 8, "生态环境局", 5),
    ("建筑业企业资质证书", 7, "建设和管理委员会", 5),
)
_OBLIGATIONS: Final = ("货款", "借款本金及利息", "工程款", "租金", "劳动报酬", "违约金", "服务费")
_PERFORMANCE: Final = (("全部未履行", 80), ("部分未履行", 20))
_USES: Final = {
    "person": (("住宅", 85), ("商业", 6), ("办公", 5), ("车位", 4)),
    "entity": (("办公", 40), ("商业", 30), ("工业", 20), ("住宅", 10)),
}
_AREA_M2: Final = {
    "住宅": (35.0, 180.0),
    "商业": (40.0, 1500.0),
    "办公": (60.0, 3000.0),
    "工业": (300.0, 20000.0),
}
_MAIL_DOMAINS: Final = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "139.com")


def make_faker(seed: int = 0) -> Faker:
    """A ``zh_CN`` Faker whose output is fixed by ``seed``.

    Raises:
        ImportError: Faker is missing; it comes with ``pip install exchange-hub[demo]``.
    """
    try:
        from faker import Faker
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the demo data generator needs Faker: pip install exchange-hub[demo]") from exc
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    return fake


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year
        return day.replace(year=day.year + years, day=28)


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _w in choices], weights=[w for _c, w in choices])[0]


def _district(rng: random.Random, name: str | None = None) -> District:
    return DISTRICT_BY_NAME[name] if name is not None else rng.choice(SHANGHAI_DISTRICTS)


def _street_address(fake: Faker, district: District, *, residential: bool) -> str:
    rng = fake.random
    street = f"上海市{district.name}{fake.street_name()}{rng.randint(1, 2999)}"
    if residential:
        return f"{street}弄{rng.randint(1, 60)}号{rng.randint(1, 28)}{rng.randint(1, 6):02d}室"
    return f"{street}号" + (f"{rng.randint(1, 40)}层" if rng.random() < 0.5 else "")


def _email(fake: Faker) -> str:
    return f"{fake.user_name()}{fake.random.randint(1, 999)}@{fake.random.choice(_MAIL_DOMAINS)}"


def person(fake: Faker, *, district: str | None = None) -> dict[str, Any]:
    """A resident of Shanghai (人口基础库 record).

    Returns:
        id_number (str), name (str), gender ("M"/"F", agrees with the ID's 17th digit), birth_date
        (ISO str, agrees with the ID), phone (11-digit mobile str), address (str), district (str, one of
        ``DISTRICTS``), email (str).
    """
    rng = fake.random
    home = _district(rng, district)
    gender: Literal["M", "F"] = "M" if rng.random() < 0.5 else "F"
    born_here = rng.random() < SHANGHAI_BORN
    id_number = citizen_id(rng, area_code=home.code if born_here else None, gender=gender)
    return {
        "id_number": id_number,
        "name": fake.name_male() if gender == "M" else fake.name_female(),
        "gender": gender,
        "birth_date": birth_date_of(id_number).isoformat(),
        "phone": fake.phone_number(),
        "address": _street_address(fake, home, residential=True),
        "district": home.name,
        "email": _email(fake),
    }


def legal_entity(fake: Faker, *, district: str | None = None) -> dict[str, Any]:
    """A company registered in Shanghai (法人基础库 record).

    Returns:
        credit_code (str), name (str), legal_representative (str), legal_rep_id_number (str),
        registered_capital (float, 万元), established_date (ISO str), address (str), district (str),
        business_scope (str), status ("存续"/"注销"/"吊销").
    """
    rng = fake.random
    home = _district(rng, district)
    industry, scope_items = rng.choice(_INDUSTRIES)
    form = _weighted(rng, _COMPANY_FORMS)
    scope = "；".join(rng.sample(scope_items, rng.randint(2, len(scope_items))))
    if rng.random() < 0.7:
        capital = float(rng.choice((10, 30, 50, 100, 200, 300, 500, 1000, 2000, 5000, 10000)))
    else:
        capital = round(10 ** rng.uniform(1.0, 4.5), 2)
    rep_gender: Literal["M", "F"] = "M" if rng.random() < 0.7 else "F"
    representative = fake.name_male() if rep_gender == "M" else fake.name_female()
    return {
        "credit_code": credit_code(rng, home.code),
        "name": f"上海{fake.company_prefix()}{industry}{form}",
        "legal_representative": representative,
        "legal_rep_id_number": citizen_id(rng, (1955, 1998), gender=rep_gender),
        "registered_capital": capital,
        "established_date": date_between(rng, dt.date(1992, 1, 1), dt.date(2024, 12, 31)).isoformat(),
        "address": _street_address(fake, home, residential=False),
        "district": home.name,
        "business_scope": f"一般项目：{scope}。{_SCOPE_TAIL}",
        "status": _weighted(rng, _ENTITY_STATUS),
    }


def business_licence(fake: Faker, entity: Mapping[str, Any]) -> dict[str, Any]:
    """A licence or permit held by ``entity`` (电子证照库 record).

    Returns:
        licence_no (str), credit_code (str), entity_name (str), licence_type (str), issue_date (ISO
        str, not before the entity was established), valid_until (ISO str, or None for 长期, long-term),
        issuing_authority (str).
    """
    rng = fake.random
    home = DISTRICT_BY_CODE.get(str(entity["credit_code"])[2:8]) or _district(rng, entity.get("district"))
    kind, _weight, department, years = rng.choices(_LICENCE_TYPES, weights=[t[1] for t in _LICENCE_TYPES])[0]
    established = dt.date.fromisoformat(entity["established_date"])
    issued = date_between(rng, established, min(established + dt.timedelta(days=365 * 8), LATEST_DATE))
    if kind == "营业执照":
        number = f"{home.code}0{issued:%Y%m%d}{rng.randint(0, 99999):05d}"
    elif kind == "食品经营许可证":
        number = f"JY1{home.code}{rng.randint(0, 999_999):06d}{rng.randint(0, 9)}"
    else:
        number = f"沪{home.short}{issued.year}{rng.randint(0, 999_999):06d}"
    until = None if years is None else _add_years(issued, years) - dt.timedelta(days=1)
    authority = "上海市交通委员会" if department == "交通委员会" else f"上海市{home.name}{department}"
    return {
        "licence_no": number,
        "credit_code": entity["credit_code"],
        "entity_name": entity["name"],
        "licence_type": kind,
        "issue_date": issued.isoformat(),
        "valid_until": None if until is None else until.isoformat(),
        "issuing_authority": authority,
    }


def _subject(subject: Mapping[str, Any]) -> tuple[Literal["person", "entity"], str, str, dt.date]:
    """Whether ``subject`` is a person or an entity record, its ID and name, and since when it can
    owe or own (an entity from its establishment, a person from the age of 18)."""
    if "credit_code" in subject:
        since = dt.date.fromisoformat(subject["established_date"])
        return "entity", str(subject["credit_code"]), str(subject["name"]), since
    adult = _add_years(dt.date.fromisoformat(subject["birth_date"]), 18)
    return "person", str(subject["id_number"]), str(subject["name"]), adult


def dishonest_debtor(fake: Faker, person_or_entity: Mapping[str, Any]) -> dict[str, Any]:
    """A court's listing of ``person_or_entity`` as a dishonest judgment debtor (失信被执行人).

    Returns:
        case_no (str, like "(2024)沪0115执1234号"), debtor_type ("person"/"entity"), debtor_id (ID number
        or credit code), debtor_name (str), court (str), obligation (str), performance_status (str),
        publish_date (ISO str, after the case year), district (str, the court's).
    """
    rng = fake.random
    kind, debtor_id, name, since = _subject(person_or_entity)
    home = _district(rng, person_or_entity.get("district"))
    case_year = rng.randint(min(max(2018, since.year + 1), LATEST_DATE.year), LATEST_DATE.year)
    published = date_between(rng, dt.date(case_year, 3, 1), min(dt.date(case_year + 1, 12, 31), LATEST_DATE))
    amount = rng.randint(5, 50_000) * (100 if kind == "entity" else 10)
    return {
        "case_no": f"({case_year})沪{home.code[2:]}执{rng.randint(1, 29999)}号",
        "debtor_type": kind,
        "debtor_id": debtor_id,
        "debtor_name": name,
        "court": f"上海市{home.name}人民法院",
        "obligation": f"支付{rng.choice(_OBLIGATIONS)}人民币{amount:,}元",
        "performance_status": _weighted(rng, _PERFORMANCE),
        "publish_date": published.isoformat(),
        "district": home.name,
    }


def real_estate(fake: Faker, owner: Mapping[str, Any]) -> dict[str, Any]:
    """A registered property right (不动产权) held by ``owner``, a person or an entity record.

    Returns:
        cert_no (str, like "沪(2019)浦字不动产权第012345号"), owner_id_number (ID number or credit code),
        owner_name (str), address (str), district (str), area_m2 (float), use ("住宅", "商业", "办公",
        "工业", "车位"), registered_date (ISO str).
    """
    rng = fake.random
    kind, owner_id, name, since = _subject(owner)
    home = _district(rng, owner.get("district") if rng.random() < 0.7 else None)
    use = _weighted(rng, _USES[kind])
    low, high = _AREA_M2.get(use, (10.0, 15.0))
    registered = date_between(rng, min(max(dt.date(2016, 1, 1), since), LATEST_DATE), LATEST_DATE)
    address = _street_address(fake, home, residential=use == "住宅")
    if use == "车位":
        address += f"地下{rng.randint(1, 3)}层{rng.randint(1, 800)}号车位"
    return {
        "cert_no": f"沪({registered.year}){home.short}字不动产权第{rng.randint(1, 99999):06d}号",
        "owner_id_number": owner_id,
        "owner_name": name,
        "address": address,
        "district": home.name,
        "area_m2": round(rng.uniform(low, high), 2),
        "use": use,
        "registered_date": registered.isoformat(),
    }


RecordKind = Literal["person", "legal_entity", "business_licence", "dishonest_debtor", "real_estate"]


def records(kind: RecordKind, count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` records of one kind, reproducible from ``seed`` (for benchmarks and bulk loads).

    Licences, debtors and properties are attached to freshly generated entities or people.
    """
    fake = make_faker(seed)
    for _ in range(count):
        if kind == "person":
            yield person(fake)
        elif kind == "legal_entity":
            yield legal_entity(fake)
        elif kind == "business_licence":
            yield business_licence(fake, legal_entity(fake))
        elif kind == "dishonest_debtor":
            yield dishonest_debtor(fake, person(fake) if fake.random.random() < 0.6 else legal_entity(fake))
        elif kind == "real_estate":
            yield real_estate(fake, person(fake) if fake.random.random() < 0.8 else legal_entity(fake))
        else:
            raise ValueError(f'unknown record kind "{kind}"')
