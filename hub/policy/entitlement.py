"""What one subscription is entitled to: requested ∩ granted ∩ classified, with the mask of every field.

Pure. Who decides what:

- the subscriber asks (its subscription): fields, masks it wants (it may only make them stronger);
- the owner answers (its catalog entry and its grant): the fields granted, the personal fields allowed in
  clear (with a legal basis), the minimum mask per field, the fields the subscriber may filter on, the
  sensitive fields released;
- the catalog classifies: ``secret`` never goes out, ``sensitive`` only where a grant releases it, an
  unclassified field never (deny by default).

A field's mask is the strongest of the requested mask, the grant's minimum and the catalog default (the
owner's kind is kept on a tie: a different mask of the same strength is not stronger). A personal field
goes out in clear only where the owner's grant puts it in ``clear`` with a legal basis; ``clear`` lifts
the catalog default, never a minimum of the same grant nor a mask the subscriber asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.catalog.model import FieldClass, ShareAttribute
from hub.policy.terms import GrantTerms, ResourceTerms, SubscriptionTerms

# Strongest first: drop > pseudonym > date_year > partial text masks > date_month > clear (0).
MASK_STRENGTH: Mapping[str, int] = {
    "drop": 6,
    "pseudonym": 5,
    "date_year": 4,
    "id_number": 3,
    "phone": 3,
    "name": 3,
    "address": 3,
    "email": 3,
    "date_month": 2,
}

# Why a requested field is withheld (shown by `xhub plan`).
NOT_IN_SCHEMA = "not in the resource's schema"
UNCLASSIFIED = "unclassified (deny by default)"
SECRET = "secret (涉密): never delivered"  # noqa: S105 - a reason, not a password
NOT_GRANTED = "not granted"
SENSITIVE_NOT_RELEASED = "sensitive, not released by a grant"
PERSONAL_NO_MASK = "personal: no mask, and not granted in clear"

# Permanent refusals of a whole subscription.
REVOKED = "revoked"
NOT_SHARED = "not_shared"
NO_GRANT = "no_grant"
GRANT_REFUSED = "grant_refused"


def strength(mask: str | None) -> int:
    """How much of a value ``mask`` hides (0 = clear); an unknown kind counts as strongest."""
    return 0 if mask is None else MASK_STRENGTH.get(mask, max(MASK_STRENGTH.values()) + 1)


def strongest(owner: str | None, requested: str | None) -> str | None:
    """The stronger of the owner's floor and the requested mask; the owner's on a tie."""
    return requested if strength(requested) > strength(owner) else owner


@dataclass(frozen=True)
class FieldGrant:
    """One field that goes out: its effective mask (None = clear) and where that mask comes from."""

    name: str
    mask: str | None
    origin: str  # "requested", "grant minimum", "catalog default", "clear by grant", "" (not personal)


@dataclass(frozen=True)
class Entitlement:
    """What a subscription may receive, before masks are built against the schema."""

    refusal: str | None
    fields: tuple[FieldGrant, ...]
    withheld: tuple[tuple[str, str], ...]  # (requested field, why it is withheld)
    owner_filterable: frozenset[str]  # fields the owner lets it filter on without seeing them in clear
    valid_until: datetime | None  # the subscription's, bounded by the grant's


def _ms(ts: datetime) -> float:
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def _refusal(sub: SubscriptionTerms, resource: ResourceTerms, grant: GrantTerms | None) -> str | None:
    if not sub.active:
        return REVOKED
    if resource.share is ShareAttribute.NOT_SHARED:
        return NOT_SHARED
    if grant is not None and grant.decision != "approved":
        return GRANT_REFUSED
    if resource.share is ShareAttribute.CONDITIONAL and grant is None:
        return NO_GRANT
    return None


def entitle(
    sub: SubscriptionTerms,
    resource: ResourceTerms,
    grant: GrantTerms | None,
    schema_fields: Mapping[str, Any],
) -> Entitlement:
    """Decide every requested field of ``sub`` under ``grant`` (None: no grant) and the catalog entry."""
    approved = grant if grant is not None and grant.decision == "approved" else None
    granted = set(approved.fields) if approved is not None and approved.fields is not None else None
    # A field in clear needs the grant's legal basis: without one the hub keeps the mask (validate refuses).
    clear = set(approved.clear) if approved is not None and approved.legal_basis else set()
    min_masks: Mapping[str, str] = approved.min_masks if approved is not None else {}
    released = set(approved.release_sensitive) if approved is not None else set()
    out: list[FieldGrant] = []
    withheld: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in sub.fields:
        if name in seen:
            continue
        seen.add(name)
        cls = resource.fields.get(name)
        why = _withheld(name, cls, in_schema=name in schema_fields, granted=granted, released=released)
        if why is not None:
            withheld.append((name, why))
            continue
        requested = sub.masks.get(name)
        grant_min = min_masks.get(name)
        default = resource.default_masks.get(name)
        personal = cls is FieldClass.PERSONAL
        in_clear = personal and name in clear
        mask, origin = _effective(requested, grant_min, None if in_clear else default)
        if mask is None and personal and not in_clear:
            withheld.append((name, PERSONAL_NO_MASK))
            continue
        out.append(FieldGrant(name, mask, origin or ("clear by grant" if personal else "")))

    filterable = set(resource.filterable) | (set(approved.filterable) if approved is not None else set())
    owner_filterable = frozenset(
        f
        for f in filterable
        if resource.fields.get(f) not in (None, FieldClass.SECRET) and f in schema_fields
    )
    valid_until = sub.valid_until
    if approved is not None and approved.valid_until is not None:
        until = approved.valid_until
        valid_until = until if valid_until is None or _ms(until) < _ms(valid_until) else valid_until
    return Entitlement(
        refusal=_refusal(sub, resource, grant),
        fields=tuple(out),
        withheld=tuple(withheld),
        owner_filterable=owner_filterable,
        valid_until=valid_until,
    )


def _withheld(
    name: str, cls: FieldClass | None, *, in_schema: bool, granted: set[str] | None, released: set[str]
) -> str | None:
    if not in_schema:
        return NOT_IN_SCHEMA
    if cls is None:
        return UNCLASSIFIED
    if cls is FieldClass.SECRET:
        return SECRET
    if granted is not None and name not in granted:
        return NOT_GRANTED
    if cls is FieldClass.SENSITIVE and name not in released:
        return SENSITIVE_NOT_RELEASED
    return None


def _effective(requested: str | None, grant_min: str | None, default: str | None) -> tuple[str | None, str]:
    """The strongest mask and where it comes from; on a tie the owner's (grant, then catalog) wins."""
    floor, origin = (grant_min, "grant minimum") if grant_min is not None else (default, "catalog default")
    if grant_min is not None and strength(default) > strength(grant_min):
        floor, origin = default, "catalog default"
    if strength(requested) > strength(floor):
        return requested, "requested"
    return floor, origin if floor is not None else ""
