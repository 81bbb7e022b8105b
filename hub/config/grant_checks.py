"""Cross-checks of the owners' grants (grants/<owner>/*.yaml) and of the owner's part of catalog entries.

A grant is the owning department's act: it sits in that department's folder, answers one known
subscription to one of that department's resources, and names only fields of that resource, each in the
role it can have (``clear`` and ``min_masks`` for personal fields, ``release_sensitive`` for sensitive
ones, never a secret field anywhere).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from hub.catalog.model import FieldClass, ShareAttribute
from hub.config.loader import ConfigDir, Origin
from hub.config.models import Grant, Resource
from hub.core.errors import ConfigProblem
from hub.policy.errors import PolicyError
from hub.policy.masks import build_mask
from hub.policy.plan import named_types, resolve_named

# Checking whether a mask fits a type needs no real key (the key changes values, never types).
_CHECK_KEY = b"owner-mask-type-check-key"


def mask_misfit(kind: str, name: str, schema: Mapping[str, Any]) -> str | None:
    """Why mask ``kind`` cannot apply to field ``name`` of ``schema`` (as a plan would say), or None."""
    field = next((f for f in schema.get("fields", []) if f["name"] == name), None)
    if field is None:
        return None
    try:
        build_mask(kind, secret=_CHECK_KEY).output_type(resolve_named(field["type"], named_types(schema)))
    except PolicyError as exc:
        return f'field "{name}": {exc}'
    return None


Report = Callable[[tuple[str | int, ...], str], None]


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def check_owner_terms(cfg: ConfigDir, code: str, fields: dict[str, object]) -> list[ConfigProblem]:
    """The catalog entry's ``default_masks`` and ``filterable``: fields of the resource, in their role."""
    res = cfg.resources[code]
    origin = cfg.origins[("resource", code)]
    out: list[ConfigProblem] = []
    schema = cfg.schemas.get(code, {})
    for name, kind in res.default_masks.items():
        if (misfit := mask_misfit(kind, name, schema)) is not None:
            out.append(origin.problem(("default_masks", name), f"resource {code}: {misfit}"))
        if name not in fields:
            out.append(origin.problem(("default_masks", name), f'field "{name}" is not in resource {code}'))
        elif res.fields.get(name) is not FieldClass.PERSONAL:
            out.append(
                origin.problem(
                    ("default_masks", name),
                    f'field "{name}" of {code} is not personal: default masks are for personal fields',
                )
            )
    for i, name in enumerate(res.filterable):
        if name not in fields:
            out.append(origin.problem(("filterable", i), f'field "{name}" is not in resource {code}'))
        elif res.fields.get(name) is FieldClass.SECRET:
            out.append(
                origin.problem(("filterable", i), f'field "{name}" of {code} is secret: never filterable')
            )
    return out


def check_grants(cfg: ConfigDir, now: datetime | None) -> list[ConfigProblem]:
    """Every problem of every grant read from ``grants/``."""
    out: list[ConfigProblem] = []
    for sid, grant in cfg.grants.items():
        _check_grant(cfg, sid, grant, now, _reporter(out, cfg.origins[("grant", sid)], sid))
    return out


def _reporter(out: list[ConfigProblem], origin: Origin, sid: str) -> Report:
    def report(path: tuple[str | int, ...], message: str) -> None:
        out.append(origin.problem(path, f'grant for subscription "{sid}": {message}'))

    return report


def _check_grant(cfg: ConfigDir, sid: str, grant: Grant, now: datetime | None, report: Report) -> None:  # noqa: PLR0912 - one branch per rule
    folder = cfg.grant_folders.get(sid, "")
    res = cfg.resources.get(grant.resource)
    owner = res.owner if res is not None else "<owner>"
    if not folder:
        report((), f"a grant lives in its owner's folder grants/<owner-dept>/ (here grants/{owner}/)")
    elif folder not in cfg.departments and "department" not in cfg.incomplete:
        report((), f"folder grants/{folder}/ is not a known department's")
    if res is None:
        if "resource" not in cfg.incomplete:
            report(("resource",), f'resource "{grant.resource}" is not in the catalog')
        return
    if folder and res.owner != folder:
        report(
            ("resource",),
            f"resource {res.code} is owned by {res.owner}, not {folder}: a department grants only its own "
            f"resources (move this grant to grants/{res.owner}/)",
        )
    sub = cfg.subscriptions.get(sid)
    if sub is None and "subscription" not in cfg.incomplete:
        report(("subscription",), f'no subscription "{sid}" is defined in subscriptions/')
    elif sub is not None and sub.resource != grant.resource:
        report(("resource",), f'subscription "{sid}" is to {sub.resource}, not {grant.resource}')
    if not grant.approver or not grant.decided_at:
        report(("decision",), "an answer names its approver and its date (approver, decided_at)")
    if grant.decision == "refused":
        # 国发〔2016〕51号: not sharing is the exception, and a refusal names its reasons and its legal basis.
        if not (grant.reason or "").strip():
            report(("decision",), "a refusal must give its reasons (reason)")
        if not (grant.legal_basis or "").strip():
            report(
                ("decision",),
                "a refusal must give its legal basis (legal_basis): the law or rule that keeps the data from "
                "this subscriber",
            )
        if res.share is ShareAttribute.UNCONDITIONAL:
            report(
                ("decision",),
                f"resource {res.code} is unconditional (无条件共享): a grant adds to what it delivers and "
                "cannot refuse it (mark the resource conditional)",
            )
    if grant.clear and not (grant.legal_basis or "").strip():
        report(("clear",), "personal fields in clear need the legal basis that allows it (legal_basis)")
    if now is not None and grant.valid_until is not None and _aware(grant.valid_until) <= now:
        report(("valid_until",), f"validity already over ({grant.valid_until.isoformat()})")
    _check_grant_fields(cfg, grant, res, report)


def _check_grant_fields(cfg: ConfigDir, grant: Grant, res: Resource, report: Report) -> None:
    schema = cfg.schemas.get(res.code)
    if schema is None:
        return
    known = {f["name"] for f in schema.get("fields", [])}
    code = res.code

    def cls_of(path: tuple[str | int, ...], name: str) -> FieldClass | None:
        if name not in known:
            report(path, f'field "{name}" is not in resource {code}')
            return None
        cls = res.fields.get(name)
        if cls is FieldClass.SECRET:
            report(path, f'field "{name}" of {code} is secret (涉密): never delivered, never filterable')
            return None
        return cls

    for i, name in enumerate(grant.fields or []):
        cls_of(("fields", i), name)
    for i, name in enumerate(grant.filterable):
        cls_of(("filterable", i), name)
    for i, name in enumerate(grant.clear):
        cls = cls_of(("clear", i), name)
        if cls is not None and cls is not FieldClass.PERSONAL:
            report(("clear", i), f'field "{name}" of {code} is {cls.value}, not personal: it needs no clear')
        if name in grant.min_masks:
            report(("clear", i), f'field "{name}" is both in clear and under a minimum mask')
    for name, kind in grant.min_masks.items():
        if (misfit := mask_misfit(kind, name, schema)) is not None:
            report(("min_masks", name), misfit)
        cls = cls_of(("min_masks", name), name)
        if cls is not None and cls is not FieldClass.PERSONAL:
            report(
                ("min_masks", name),
                f'field "{name}" of {code} is {cls.value}: minimum masks are for personal fields',
            )
    for i, name in enumerate(grant.release_sensitive):
        cls = cls_of(("release_sensitive", i), name)
        if cls is not None and cls is not FieldClass.SENSITIVE:
            report(("release_sensitive", i), f'field "{name}" of {code} is {cls.value}, not sensitive')
