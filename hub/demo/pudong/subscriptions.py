"""The generated subscriptions (popularity Zipf-like) and the owners' answers to the conditional ones."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from hub.demo.pudong.shape import HUB, Naming, dump_yaml


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


def write_subscriptions(
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
        dump_yaml(out / "subscriptions" / f"{naming.files}{subscriber}.yaml", {"subscriptions": subs})
    for owner, grants in sorted(by_owner.items()):
        dump_yaml(out / "grants" / owner / f"{naming.files}subscriptions.yaml", {"grants": grants})
    return readers, sum(len(g) for g in by_owner.values())
