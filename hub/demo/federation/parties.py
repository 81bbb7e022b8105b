"""Who takes part in the federated demo, and the config directory each hub is run from.

Two districts, each with its court and its hub on a cluster of its own: the court's dishonest-debtor list
(its own code per district: 一数一码) climbs through an ordinary subscription of the link (``citylink``)
at the district, granted by the court with the name in clear and the debtor's ID masked (the catalog's
default, ``id_number``). The city hub, on the third cluster, knows each list as a linked resource owned by
the district hub (department ``pudong`` / ``xuhui`` of the city config: the link's city identity) and
serves the city's public credit centre (市公共信用信息服务中心), which takes both lists into one table,
narrowed again: no publication date, the ID masked by the city too (it arrives masked; the city could not
put it in clear), the name in clear by the district hub's grant at the city.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from hub.demo.federation.configs import (
    RESOURCE,
    add_link_subscription,
    add_linked_resource,
    district_terms,
    linked_schema,
    recode,
    write_city_config,
    write_yaml,
)


@dataclass(frozen=True)
class District:
    """A district of the demo: its hub (also its department name at the city), court and list."""

    hub: str
    label: str  # the district's name, as the court's records carry it
    area: str  # GB/T 2260 code of the district, in the court's case numbers
    court: str  # the court's department id at the district
    resource: str  # the court's list, coded by the district

    @property
    def court_name(self) -> str:
        return f"上海市{self.label}人民法院"


DISTRICTS: Final = (
    District("pudong", "浦东新区", "310115", "pudong-court", "PD-CRD-0001"),
    District("xuhui", "徐汇区", "310104", "xuhui-court", "XH-CRD-0001"),
)
CITY: Final = "city"
LINK: Final = "citylink"  # the link, as a department of each district (its district identity)
CENTRE: Final = "credit-centre"
CENTRE_NAME: Final = "市公共信用信息服务中心 (the city's public credit information centre)"
CENTRE_FIELDS: Final = (
    "case_no",
    "debtor_type",
    "debtor_id",
    "debtor_name",
    "court",
    "performance_status",
    "district",
)
"""What the credit centre takes of each list: the district withholds the obligation, the city the date."""
LEGAL_BASIS: Final = "《关于对失信被执行人实施联合惩戒的合作备忘录》 (发改财金〔2016〕141号)"


def district_of_case(case_no: str) -> District:
    """The district whose court listed ``case_no`` (its area code is in the case number)."""
    for district in DISTRICTS:
        if f"沪{district.area[2:]}执" in case_no:
            return district
    raise ValueError(f"case {case_no!r} is of no court of the demo")


def centre_subscription(district: District) -> str:
    return f"centre-{district.hub}"


def hubs_file(
    root: Path, *, hub: str, description: str, bootstrap: str, admin_port: int, registry_port: int
) -> None:
    """hubs.yaml of one hub on its cluster, installing only configs signed by the apply role. No registry
    url yet: the apply serves the built-in one in-process; the demo then names the cluster's registry
    process here (``Federation.start_registries``)."""
    env = f"XHUB_{hub.upper()}"
    write_yaml(
        root / "hubs.yaml",
        {
            "kafka": {"bootstrap_servers": bootstrap},
            "registry": {},
            "config_signing": {"public_key_env": "XHUB_CONFIG_PUBLIC_KEY"},
            "timezone": "Asia/Shanghai",
            "hubs": [
                {
                    "name": hub,
                    "description": description,
                    "admin_port": admin_port,
                    "registry_port": registry_port,
                    "pseudonym_secret_env": f"{env}_SECRET",
                    "audit_key_env": f"{env}_AUDIT_KEY",
                }
            ],
        },
    )


def write_district_config(
    root: Path, district: District, *, bootstrap: str, admin_port: int, registry_port: int, repo: Path
) -> Path:
    """The district's config: its court and the court's list (the demo's catalog entry, recoded), the
    link's subscription and the court's grant of it."""
    hubs_file(
        root,
        hub=district.hub,
        description=f"{district.label}共享交换枢纽 (district hub)",
        bootstrap=bootstrap,
        admin_port=admin_port,
        registry_port=registry_port,
    )
    court = {
        "id": district.court,
        "name": f"{district.label}人民法院 (district people's court)",
        "principal": f"User:{district.court}",
        "systems": ["enforcement"],
    }
    write_yaml(root / "departments" / "court.yaml", {"departments": [court]})
    demo_catalog = yaml.safe_load(
        (repo / "deploy" / "demo" / "config" / "catalog" / "credit.yaml").read_text("utf-8")
    )
    entry = next(r for r in demo_catalog["resources"] if r["code"] == "PD-CRD-0001")
    entry = {**entry, "code": district.resource, "owner": district.court}
    write_yaml(root / "catalog" / "credit.yaml", {"resources": [entry]})
    add_link_subscription(
        root, link=LINK, hub=district.hub, court=district.court, grant=_court_grant(district)
    )
    recode(root, RESOURCE, district.resource)  # the link's subscription names the list by its code here
    return root


def _court_grant(district: District) -> dict[str, Any]:
    """The court's answer to the link: the name climbs in clear, the ID keeps the catalog's mask."""
    return {
        "resource": district.resource,
        "approver": f"{district.label}人民法院执行局",
        "clear": ["debtor_name"],
        "legal_basis": LEGAL_BASIS,
    }


def write_city_side(
    root: Path, district_roots: dict[str, Path], *, bootstrap: str, admin_port: int, registry_port: int
) -> Path:
    """The city's config: both lists linked (with the copies of the districts' published terms), the
    credit centre's subscriptions and the district hubs' grants of them (the name in clear)."""
    first, *others = DISTRICTS
    schema = linked_schema(persons_only=False)
    subscriptions = [
        {
            "id": centre_subscription(d),
            "subscriber": CENTRE,
            "resource": d.resource,
            "hub": CITY,
            "fields": list(CENTRE_FIELDS),
            "purpose": "信用联动奖惩: the city's merged list of dishonest debtors",
        }
        for d in DISTRICTS
    ]
    write_city_config(
        root,
        dept=first.hub,
        hub=CITY,
        bootstrap=bootstrap,
        registry_url=None,
        district_hub=first.hub,
        terms=district_terms(district_roots[first.hub]),
        schema=schema,
        departments=[
            {"id": d.hub, "name": f"{d.label}共享交换枢纽 (district hub)", "principal": f"User:{d.hub}"}
            for d in others
        ]
        + [{"id": CENTRE, "name": CENTRE_NAME, "principal": f"User:{CENTRE}"}],
        subscriptions=subscriptions,
        grants=[_hub_grant(first)],
        resource=first.resource,
        dept_name=f"{first.label}共享交换枢纽 (district hub)",
        default_masks={"debtor_id": "id_number"},
    )
    for d in others:
        add_linked_resource(
            root,
            dept=d.hub,
            district_hub=d.hub,
            terms=district_terms(district_roots[d.hub]),
            stem=d.hub,
            schema=schema,
            resource=d.resource,
            default_masks={"debtor_id": "id_number"},
        )
        write_yaml(root / "grants" / d.hub / "credit.yaml", {"grants": [_hub_grant(d)]})
    hubs_file(
        root,
        hub=CITY,
        description="市级共享交换平台 (city platform)",
        bootstrap=bootstrap,
        admin_port=admin_port,
        registry_port=registry_port,
    )
    return root


def _hub_grant(district: District) -> dict[str, Any]:
    """The district hub's answer at the city (it owns the linked list there): the name in clear."""
    return {
        "subscription": centre_subscription(district),
        "resource": district.resource,
        "decision": "approved",
        "approver": f"{district.label}共享交换枢纽",
        "decided_at": "2026-10-02T10:00:00+08:00",
        "clear": ["debtor_name"],
        "legal_basis": LEGAL_BASIS,
    }


def widening_grant(district: District) -> dict[str, Any]:
    """A city grant that would put the district-masked ID back in clear: validation must refuse it."""
    return {**_hub_grant(district), "clear": ["debtor_name", "debtor_id"]}
