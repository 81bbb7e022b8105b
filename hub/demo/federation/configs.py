"""Config directories of a federation: the link's subscription at a district, and a city config whose
catalog knows the district's list as a linked resource (``linked_from``) with a copy of the district's
published terms. Used by ``xhub demo --federation`` and by the tests (tests/fixtures/federation.py
re-exports them: one copy)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

import schemas
from hub.config import load_config
from hub.config.linked import published_terms
from hub.config.validation import compile_config

RESOURCE = "PD-CRD-0001"
LINK_SUBSCRIPTION = "city-debtors"
DEBTOR_SCHEMA = schemas.load("resources/dishonest_debtor.avsc")
LINKED_FIELDS = [f["name"] for f in DEBTOR_SCHEMA["fields"] if f["name"] != "obligation"]
"""What climbs to the city: every field of the court's list but the obligation."""


def write_yaml(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def add_link_subscription(
    root: Path, *, link: str, hub: str, court: str, grant: dict[str, Any] | None = None
) -> None:
    """The link as a department of the district config, subscribing to the court's list (and, with
    ``grant``, the court's answer to it: grants/<court>/citylink.yaml)."""
    write_yaml(
        root / "departments" / "citylink.yaml",
        {
            "departments": [
                {
                    "id": link,
                    "name": "市级共享交换平台 (the city hub's link)",
                    "principal": f"User:{link}",
                    "hub_link": True,  # its position is kept at the city cluster (xhub lag says so)
                }
            ]
        },
    )
    subscription = {
        "id": LINK_SUBSCRIPTION,
        "subscriber": link,
        "resource": RESOURCE,
        "hub": hub,
        "fields": LINKED_FIELDS,
        "purpose": "一处失信、处处受限 at city level: the district list climbs to the city hub",
    }
    write_yaml(root / "subscriptions" / link / "credit.yaml", {"subscriptions": [subscription]})
    if grant is not None:
        answer = {
            "subscription": LINK_SUBSCRIPTION,
            "resource": RESOURCE,
            "decision": "approved",
            "approver": "浦东新区人民法院执行局",
            "decided_at": "2026-10-01T10:00:00+08:00",
            **grant,
        }
        write_yaml(root / "grants" / court / "citylink.yaml", {"grants": [answer]})


def district_terms(district_root: Path, subscription: str = LINK_SUBSCRIPTION) -> dict[str, Any]:
    """What a hub publishes for a link's subscription (``xhub plan --terms``)."""
    cfg = load_config(district_root)
    return published_terms(cfg, compile_config(cfg).plans, subscription)


def linked_schema(fields: Sequence[str] = LINKED_FIELDS, *, persons_only: bool = True) -> dict[str, Any]:
    """The district's record as delivered to the link (``fields`` of it); with ``persons_only`` the city
    takes persons only (an entity debtor is a record its schema refuses: the link dead-letters it)."""
    person = {"type": "enum", "name": "PersonOnly", "symbols": ["person"]}
    kept = [
        {**field, "type": person} if persons_only and field["name"] == "debtor_type" else field
        for field in DEBTOR_SCHEMA["fields"]
        if field["name"] in fields
    ]
    return {**DEBTOR_SCHEMA, "name": "LinkedDishonestDebtor", "fields": kept}


def recode(root: Path, old: str, new: str) -> None:
    """Give a resource of a config directory another code (another district's 一数一码) in every file."""
    for path in root.rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        if old in text:
            path.write_text(text.replace(old, new), encoding="utf-8")


def write_city_config(
    root: Path,
    *,
    dept: str,
    hub: str,
    bootstrap: str,
    registry_url: str | None,
    district_hub: str,
    terms: dict[str, Any],
    schema: dict[str, Any] | None = None,
    departments: Sequence[dict[str, Any]] = (),
    subscriptions: Sequence[dict[str, Any]] = (),
    grants: Sequence[dict[str, Any]] = (),
    resource: str = RESOURCE,
    subscription: str = LINK_SUBSCRIPTION,
    secrets: str = "CITY",
    dept_name: str = "浦东新区共享交换枢纽 (district hub)",
    default_masks: Mapping[str, str] | None = None,
) -> Path:
    """A city config: the district hub as department ``dept`` owning the linked ``resource`` (delivered
    to the link's ``subscription`` there), a copy of the district's ``terms``, and the city's own
    subscribers, subscriptions and grants (grants/<dept>/). A province config likewise, with the city hub
    as ``dept``. ``secrets``: the hub's pseudonym secret and audit key are read from XHUB_<secrets>_SECRET
    and XHUB_<secrets>_AUDIT_KEY. ``registry_url`` None: the hub serves the built-in registry;
    ``default_masks``: the city's masks of the linked resource for every subscriber."""
    hubs = {"name": hub, "admin_port": 0, "registry_port": 0}
    hubs |= {"pseudonym_secret_env": f"XHUB_{secrets}_SECRET", "audit_key_env": f"XHUB_{secrets}_AUDIT_KEY"}
    write_yaml(
        root / "hubs.yaml",
        {
            "kafka": {"bootstrap_servers": bootstrap},
            "registry": {} if registry_url is None else {"url": registry_url},
            "hubs": [hubs],
        },
    )
    district = {"id": dept, "name": dept_name, "principal": f"User:{dept}"}
    write_yaml(root / "departments" / "pudong.yaml", {"departments": [district]})
    for other in departments:
        write_yaml(root / "departments" / f"{other['id']}.yaml", {"departments": [other]})
    add_linked_resource(
        root,
        dept=dept,
        district_hub=district_hub,
        terms=terms,
        schema=schema,
        resource=resource,
        subscription=subscription,
        stem="pudong",
        default_masks=default_masks,
    )
    by_subscriber: dict[str, list[dict[str, Any]]] = {}
    for sub in subscriptions:
        by_subscriber.setdefault(sub["subscriber"], []).append(sub)
    for subscriber, subs in by_subscriber.items():
        write_yaml(root / "subscriptions" / subscriber / "credit.yaml", {"subscriptions": subs})
    if grants:
        write_yaml(root / "grants" / dept / "credit.yaml", {"grants": list(grants)})
    return root


def add_linked_resource(
    root: Path,
    *,
    dept: str,
    district_hub: str,
    terms: dict[str, Any],
    stem: str,
    schema: dict[str, Any] | None = None,
    resource: str = RESOURCE,
    subscription: str = LINK_SUBSCRIPTION,
    default_masks: Mapping[str, str] | None = None,
) -> None:
    """``resource`` in a city config's catalog as linked from ``district_hub`` (the link's
    ``subscription`` there), owned by ``dept`` (a department of that config), with its schema and the
    copy of the terms in files named by ``stem``; ``default_masks``: the city's masks for every
    subscriber (a personal field arriving in clear needs a mask or a grant in clear)."""
    schema = schema or linked_schema()
    terms_file = f"linked/{stem}-{subscription}.json"
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    (root / "schemas" / f"linked-{stem}.avsc").write_text(json.dumps(schema, ensure_ascii=False), "utf-8")
    (root / terms_file).parent.mkdir(parents=True, exist_ok=True)
    (root / terms_file).write_text(json.dumps(terms, ensure_ascii=False, indent=2), "utf-8")
    fields = [f["name"] for f in schema["fields"]]
    classes = dict.fromkeys(fields, "public") | {"debtor_id": "personal", "debtor_name": "personal"}
    entry = {
        "code": resource,
        "name": f"失信被执行人名单 (linked from {district_hub})",
        "owner": dept,
        "schema": f"schemas/linked-{stem}.avsc",
        "key": "case_no",
        "share": "unconditional",
        "fields": {k: v for k, v in classes.items() if k in fields},
        "linked_from": {"hub": district_hub, "subscription": subscription, "terms": terms_file},
    }
    if default_masks:
        entry["default_masks"] = dict(default_masks)
    write_yaml(root / "catalog" / f"linked-{stem}.yaml", {"resources": [entry]})
