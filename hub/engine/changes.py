"""What changed in a subscription's policy, in words for the audit (policy_changed entries). Pure."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.config.models import Grant, Subscription
from hub.policy.plan import DeliveryPlan


def _iso(ms: int | None) -> str:
    if ms is None:
        return "none"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _masks(plan: DeliveryPlan) -> dict[str, str | None]:
    return {r.name: r.mask.kind if r.mask else None for r in plan.rules}


def describe_grant(grant: Grant) -> str:
    """The owner's answer (共享申请的答复) as recorded in its grant: decision, who, when, what, until when."""
    parts = [f"grant {grant.decision}"]
    if grant.reference:
        parts.append(f"ref {grant.reference}")
    if grant.approver:
        parts.append(f"by {grant.approver}")
    if grant.decided_at:
        parts.append(f"at {grant.decided_at.isoformat()}")
    if grant.fields is not None:
        parts.append("fields " + ",".join(grant.fields))
    if grant.clear:
        parts.append("clear " + ",".join(grant.clear))
    if grant.valid_until:
        parts.append(f"until {grant.valid_until.isoformat()}")
    if grant.reason:
        parts.append(f"because {grant.reason}")
    return " ".join(parts)


def _differences(
    before: DeliveryPlan, after: DeliveryPlan, before_sub: Subscription | None, after_sub: Subscription | None
) -> list[str]:
    parts: list[str] = []
    added = [f for f in after.fields if f not in before.fields]
    dropped = [f for f in before.fields if f not in after.fields]
    if added:
        parts.append("fields +" + ",".join(added))
    if dropped:
        parts.append("fields -" + ",".join(dropped))
    old_masks, new_masks = _masks(before), _masks(after)
    parts.extend(
        f"mask {name}: {old_masks[name]} -> {new_masks[name]}"
        for name in after.fields
        if name in old_masks and old_masks[name] != new_masks[name]
    )
    old_filter = before_sub.filter if before_sub else None
    new_filter = after_sub.filter if after_sub else None
    if old_filter != new_filter:
        parts.append(f"filter: {old_filter} -> {new_filter}")
    if (before.valid_from_ms, before.valid_until_ms) != (after.valid_from_ms, after.valid_until_ms):
        parts.append(f"valid {_iso(after.valid_from_ms)} .. {_iso(after.valid_until_ms)}")
    return parts


def describe_change(
    before: DeliveryPlan | None,
    after: DeliveryPlan | None,
    before_sub: Subscription | None = None,
    after_sub: Subscription | None = None,
    *,
    verb: str | None = None,
    grant: Grant | None = None,
) -> str:
    """One line: added/removed/changed, then what differs (fields, masks, filter, window, refusal, grant).

    ``verb`` replaces the first word (e.g. "in force" for the policies a worker starts with).
    """
    if after is None:
        return verb or "removed"
    parts = [verb or ("added" if before is None else "changed")]
    if before is not None:
        parts += _differences(before, after, before_sub, after_sub)
    else:
        parts.append("fields " + ",".join(after.fields))
        if after.valid_from_ms is not None or after.valid_until_ms is not None:
            parts.append(f"valid {_iso(after.valid_from_ms)} .. {_iso(after.valid_until_ms)}")
    if after.refusal:
        parts.append(f"refused: {after.refusal}")
    elif before is not None and before.refusal:
        parts.append(f"deliverable (was refused: {before.refusal})")
    if grant is not None:
        parts.append(describe_grant(grant))
    return "; ".join(parts)
