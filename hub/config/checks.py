"""Cross-checks over a whole config directory: references, classifications, grants, validity.

Masks and row filters are checked by compiling the plans (``hub.config.validation``), not here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.catalog.model import FieldClass, ShareAttribute
from hub.config.grant_checks import check_grants, check_owner_terms
from hub.config.loader import ConfigDir
from hub.core.errors import ConfigProblem


def schema_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """Top-level field name -> Avro type of a record schema."""
    return {f["name"]: f["type"] for f in schema.get("fields", [])}


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def cross_check(cfg: ConfigDir, now: datetime | None) -> list[ConfigProblem]:
    """Every problem that needs more than one file to see.

    ``now``: when given, a subscription whose validity is already over is a problem. A hub installing an
    applied config passes None: a window that closed since the apply is a refusal at run time ("expired"),
    not a broken config.
    """
    problems: list[ConfigProblem] = []
    hubs = cfg.hubs
    if not hubs and "hub" not in cfg.incomplete:  # a hubs.yaml that did not load has its own error
        hubs_origin = cfg.origins.get(("hubs", ""))
        problems.append(
            hubs_origin.problem((), "no hub is defined")
            if hubs_origin
            else ConfigProblem("hubs.yaml", None, "hubs", "no hub is defined")
        )

    for code, res in cfg.resources.items():
        origin = cfg.origins[("resource", code)]
        if res.owner not in cfg.departments and "department" not in cfg.incomplete:
            problems.append(
                origin.problem(
                    ("owner",), f'owner "{res.owner}" of resource {code} is not a known department'
                )
            )
        if res.share is not ShareAttribute.UNCONDITIONAL and not res.legal_basis:
            problems.append(
                origin.problem(("share",), f"resource {code} is {res.share.value}: give its legal_basis")
            )
        schema = cfg.schemas.get(code)
        if schema is None:
            continue
        fields = schema_fields(schema)
        if res.key not in fields:
            problems.append(origin.problem(("key",), f'key "{res.key}" is not a field of resource {code}'))
        problems.extend(
            origin.problem(
                ("fields",), f'field "{name}" of resource {code} is not classified (deny by default)'
            )
            for name in fields
            if name not in res.fields
        )
        problems.extend(
            origin.problem(("fields", name), f'field "{name}" is not in the schema of resource {code}')
            for name in res.fields
            if name not in fields
        )
        problems.extend(
            origin.problem(("checks", name), f'field "{name}" is not in resource {code}')
            for name in res.checks
            if name not in fields
        )
        problems.extend(check_owner_terms(cfg, code, fields))

    for sid in cfg.subscriptions:
        problems.extend(_check_subscription(cfg, sid, now))
    problems.extend(check_grants(cfg, now))
    return problems


def _check_subscription(cfg: ConfigDir, sid: str, now: datetime | None) -> list[ConfigProblem]:  # noqa: PLR0912 - one branch per rule
    sub = cfg.subscriptions[sid]
    origin = cfg.origins[("subscription", sid)]
    out: list[ConfigProblem] = []

    def problem(path: tuple[str | int, ...], message: str) -> None:
        out.append(origin.problem(path, f'subscription "{sid}": {message}'))

    # A reference into a kind whose file did not load is not reported: that file has its own error.
    if sub.subscriber not in cfg.departments and "department" not in cfg.incomplete:
        problem(("subscriber",), f'subscriber "{sub.subscriber}" is not a known department')
    if sub.hub not in cfg.hubs and "hub" not in cfg.incomplete:
        problem(("hub",), f'hub "{sub.hub}" is not in hubs.yaml')
    res = cfg.resources.get(sub.resource)
    if res is None:
        if "resource" not in cfg.incomplete:
            problem(("resource",), f'resource "{sub.resource}" is not in the catalog')
        return out
    if res.owner == sub.subscriber:
        problem(
            ("subscriber",),
            f"department {sub.subscriber} owns {res.code}; it does not subscribe to its own data",
        )
    if res.share is ShareAttribute.NOT_SHARED:
        basis = f" (legal basis: {res.legal_basis})" if res.legal_basis else ""
        problem(
            ("resource",),
            f"resource {res.code} is not shared (不予共享){basis}: it cannot be subscribed",
        )
    if sub.approval is not None:
        problem(
            ("approval",),
            "the answer to a share request is the owning department's act, not the subscriber's: move it "
            f"to a grant in grants/{res.owner}/ (decision, approver, reference, decided_at, valid_until, "
            "fields, clear with its legal_basis, min_masks)",
        )
    if now is not None and sub.valid_until is not None and _aware(sub.valid_until) <= now:
        problem(("valid_until",), f"validity already over ({sub.valid_until.isoformat()})")
    if sub.valid_from and sub.valid_until and sub.valid_from >= sub.valid_until:
        problem(("valid_from",), "valid_from is not before valid_until")

    schema = cfg.schemas.get(res.code)
    if schema is None:
        return out
    fields = schema_fields(schema)
    for i, name in enumerate(sub.fields):
        if name not in fields:
            problem(("fields", i), f'field "{name}" is not in resource {res.code}')
            continue
        cls = res.fields.get(name)
        if cls is FieldClass.SECRET:
            problem(("fields", i), f'field "{name}" of {res.code} is secret (涉密): never delivered')
        # Without a grant, an unconditional resource's personal field goes out only masked: a request
        # without any mask would receive nothing of it. (Under a grant the owner has answered, and
        # `xhub plan` says why such a field is withheld.)
        if (
            cls is FieldClass.PERSONAL
            and res.share is ShareAttribute.UNCONDITIONAL
            and sid not in cfg.grants
            and name not in sub.masks
            and name not in res.default_masks
        ):
            problem(
                ("fields", i),
                f'field "{name}" of {res.code} is personal: ask for a mask (only the owner puts a personal '
                f"field in clear, in a grant in grants/{res.owner}/; a legal_basis here does not)",
            )
    for name in sub.masks:
        if name not in sub.fields:
            problem(("masks", name), f'mask on field "{name}" which is not requested')
    return out
