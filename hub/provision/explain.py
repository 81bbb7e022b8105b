"""`xhub plan`'s policy explanation: per subscription, what goes out, how masked, what a filter may read,
and why each requested field that does not go out is withheld. Built from the compiled plans of the one
validation path, so it explains exactly what a hub would enforce."""

from __future__ import annotations

from typing import Any

from hub.config.loader import ConfigDir
from hub.config.validation import CompiledConfig
from hub.policy.plan import DeliveryPlan


def explain(compiled: CompiledConfig) -> list[dict[str, Any]]:
    """One entry per compiled subscription, in id order (JSON-ready)."""
    return [_entry(compiled.cfg, compiled.plans[sid]) for sid in sorted(compiled.plans)]


def _how(cfg: ConfigDir, plan: DeliveryPlan, name: str, origin: str) -> str:
    res = cfg.resources.get(plan.resource)
    cls = res.fields.get(name) if res is not None else None
    what = cls.value if cls is not None else "?"
    if cls is not None and cls.value == "sensitive":
        what += ", released by the grant"
    return f"{what}, {origin}" if origin else what


def _entry(cfg: ConfigDir, plan: DeliveryPlan) -> dict[str, Any]:
    grant = cfg.grants.get(plan.subscription)
    sub = cfg.subscriptions.get(plan.subscription)
    return {
        "subscription": plan.subscription,
        "subscriber": plan.subscriber,
        "resource": plan.resource,
        "state": f"refused: {plan.refusal}" if plan.refusal else "deliverable",
        "grant": None
        if grant is None
        else {
            "decision": grant.decision,
            "reference": grant.reference,
            "approver": grant.approver,
            "legal_basis": grant.legal_basis,
            "reason": grant.reason,
            "valid_until": grant.valid_until.isoformat() if grant.valid_until else None,
            "folder": f"grants/{cfg.grant_folders.get(plan.subscription, '')}/",
        },
        "fields": [
            {
                "field": r.name,
                "mask": r.mask.kind if r.mask else None,
                "from": _how(cfg, plan, r.name, r.origin),
            }
            for r in plan.rules
        ],
        "withheld": [{"field": name, "why": why} for name, why in plan.withheld],
        "filter": sub.filter if sub is not None else None,
        "filter_may_read": sorted(plan.filter_fields),
        "key": f"{plan.key_field} as pseudonym" if plan.key_masked else f"{plan.key_field} in clear",
        "version": plan.version,
    }


def explain_text(entries: list[dict[str, Any]]) -> str:
    """The explanation for people: one block per subscription."""
    lines: list[str] = []
    for e in entries:
        lines.append(f"subscription {e['subscription']} ({e['subscriber']} <- {e['resource']}): {e['state']}")
        if e["state"] != "deliverable":
            lines.append("  nothing goes out while refused; once deliverable it would be:")
        grant = e["grant"]
        if grant is None and e["state"] == "refused: no_grant":
            lines.append("  grant: none yet (conditional: nothing goes out until the owner grants it)")
        elif grant is None:
            lines.append("  grant: none (the catalog's defaults)")
        else:
            extra = f" ref {grant['reference']}" if grant["reference"] else ""
            extra += f" until {grant['valid_until']}" if grant["valid_until"] else ""
            extra += f" because {grant['reason']}" if grant["reason"] else ""
            lines.append(f"  grant: {grant['decision']}{extra} ({grant['folder']})")
        for f in e["fields"]:
            how = f"masked {f['mask']} ({f['from']})" if f["mask"] else f"in clear ({f['from']})"
            lines.append(f"  field {f['field']}: {how}")
        lines.extend(f"  withheld {w['field']}: {w['why']}" for w in e["withheld"])
        if e["filter"]:
            lines.append(f"  filter: {e['filter']}")
        lines.append(f"  filter may read: {', '.join(e['filter_may_read']) or 'nothing'}")
        lines.append(f"  key: {e['key']}")
    return "\n".join(lines)
