"""Kafka ACLs from ownership, as data: what `xhub plan` shows and `xhub apply` creates and removes.

The table of DESIGN.md, for the parties of hub.provision.credentials (principal ``User:<CN>``):

- department D: write its ``xhub.src.D.*`` (prefix), ``xhub.dlq.D``, ``xhub.pos.D`` (read ``pos`` too),
  ``xhub.backlog.D`` and transactional ids ``xhub-src-D-*``; read the ``xhub.dlv.<hub>.<sub>`` of its
  ACTIVE subscriptions and use groups ``xhub-sink-D-*``;
- hub H: read the source topics of its subscriptions and ``xhub.cfg.H``; read and write ``xhub.dlv.H.*``,
  ``xhub.audit.H``, ``xhub.dlq.H``, ``xhub.state.H``; group and transactional ids ``xhub-hub-H*``; describe
  its subscribers' sink groups ``xhub-sink-D-*`` and read the ``xhub.backlog.D`` of the departments it
  reads from (lag and source backlog on its status page);
- apply role: create, alter, describe every ``xhub.*`` topic; write ``xhub.cfg.*``; the registry's topic
  (the built-in registry runs inside apply) and the ledger; create and delete ACLs;
- registry: read and write ``_xhub_schemas``, transactional ids ``xhub-registry-*``;
- operator: describe topics and groups (lag), read ``xhub.audit.*``, ``xhub.dlq.*`` and ``xhub.backlog.*``.

A subscription revoked, expired or refused has no READ on its delivery topic: revoking it removes the ACL.
Apply removes only ACLs it created: each one it creates is recorded in the compacted ledger topic
``_xhub_acls`` (key: the ACL's id), and only ledger entries no longer wanted are removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime

from hub.config.loader import ConfigDir
from hub.config.validation import compile_config
from hub.core import names
from hub.provision.credentials import APPLY_ROLE, OPERATOR, REGISTRY, hub_party, parties

LEDGER_TOPIC = "_xhub_acls"


@dataclass(frozen=True, order=True)
class AclSpec:
    """One ALLOW ACL: principal, resource (TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER), name, pattern, op."""

    principal: str
    resource: str
    name: str
    pattern: str  # LITERAL | PREFIXED
    operation: str  # READ, WRITE, DESCRIBE, CREATE, ALTER, ALTER_CONFIGS, DESCRIBE_CONFIGS, DELETE, ALL
    why: str = ""

    @property
    def key(self) -> str:
        """The ACL's id (its identity without the explanation): the ledger's key."""
        return f"{self.principal}|{self.resource}|{self.pattern}|{self.name}|{self.operation}"

    def text(self) -> str:
        star = "*" if self.pattern == "PREFIXED" else ""
        return f"{self.principal} {self.operation} {self.resource.lower()} {self.name}{star} ({self.why})"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode("utf-8")


def _ops(  # noqa: PLR0917 - the fields of an ACL, in Kafka's order
    principal: str, resource: str, name: str, pattern: str, ops: Iterable[str], why: str
) -> list[AclSpec]:
    return [AclSpec(principal, resource, name, pattern, op, why) for op in ops]


def desired_acls(cfg: ConfigDir, now: datetime) -> set[AclSpec]:
    """Every ACL the config asks for at ``now`` (an inactive subscription gets no READ)."""
    compiled = compile_config(cfg, now=now)
    now_ms = int(now.timestamp() * 1000)
    out: list[AclSpec] = []
    principal = {p.owner: p.principal for p in parties(cfg) if p.kind in ("department", "hub")}
    for dept in sorted(cfg.departments):
        who = principal[dept]
        out += _ops(who, "TOPIC", f"xhub.src.{dept}.", "PREFIXED", ("WRITE", "DESCRIBE"), "its sources")
        out += _ops(who, "TOPIC", names.dead_letter_topic(dept), "LITERAL", ("WRITE", "DESCRIBE"), "its dlq")
        out += _ops(
            who,
            "TOPIC",
            names.position_topic(dept),
            "LITERAL",
            ("READ", "WRITE", "DESCRIBE"),
            "its positions",
        )
        out += _ops(
            who, "TOPIC", names.backlog_topic(dept), "LITERAL", ("WRITE", "DESCRIBE"), "its backlog reports"
        )
        out += _ops(
            who,
            "TRANSACTIONAL_ID",
            f"{names.PREFIX}-src-{dept}-",
            "PREFIXED",
            ("WRITE", "DESCRIBE"),
            "its sources",
        )
        out += _ops(who, "GROUP", names.sink_group(dept, ""), "PREFIXED", ("READ", "DESCRIBE"), "its sinks")
    for plan in compiled.plans.values():
        if plan.refusal_at(now_ms) is None and plan.subscriber in principal:
            why = f"subscription {plan.subscription}"
            out += _ops(
                principal[plan.subscriber], "TOPIC", plan.delivery_topic, "LITERAL", ("READ", "DESCRIBE"), why
            )
    for hub in sorted(cfg.hubs):
        who = f"User:{hub_party(hub)}"
        own = [names.audit_topic(hub), names.dead_letter_topic(hub), names.state_topic(hub)]
        for topic in own:
            out += _ops(who, "TOPIC", topic, "LITERAL", ("READ", "WRITE", "DESCRIBE"), "its own")
        out += _ops(
            who, "TOPIC", f"xhub.dlv.{hub}.", "PREFIXED", ("READ", "WRITE", "DESCRIBE"), "its deliveries"
        )
        out += _ops(who, "TOPIC", names.config_topic(hub), "LITERAL", ("READ", "DESCRIBE"), "its config")
        sources = {p.source_topic for p in compiled.plans.values() if p.hub == hub}
        for topic in sorted(sources):
            out += _ops(who, "TOPIC", topic, "LITERAL", ("READ", "DESCRIBE"), "a source of its subscriptions")
        # the source backlog on its status page: the reports of the departments it reads from
        owners = {cfg.resources[p.resource].owner for p in compiled.plans.values() if p.hub == hub}
        for dept in sorted(owners):
            why = "its sources' backlog"
            out += _ops(who, "TOPIC", names.backlog_topic(dept), "LITERAL", ("READ", "DESCRIBE"), why)
        out += _ops(who, "GROUP", names.hub_group(hub), "PREFIXED", ("READ", "DESCRIBE"), "its workers")
        # subscriber lag on its status page: the committed offsets of its subscribers' sink groups
        for dept in sorted({p.subscriber for p in compiled.plans.values() if p.hub == hub}):
            why = "its subscribers' lag"
            out += _ops(who, "GROUP", names.sink_group(dept, ""), "PREFIXED", ("DESCRIBE",), why)
        out += _ops(
            who, "TRANSACTIONAL_ID", names.hub_group(hub), "PREFIXED", ("WRITE", "DESCRIBE"), "its workers"
        )
    apply = f"User:{APPLY_ROLE}"
    manage = ("CREATE", "ALTER", "ALTER_CONFIGS", "DESCRIBE", "DESCRIBE_CONFIGS", "DELETE")
    out += _ops(apply, "TOPIC", f"{names.PREFIX}.", "PREFIXED", manage, "provisioning")
    out += _ops(apply, "TOPIC", "xhub.cfg.", "PREFIXED", ("READ", "WRITE"), "config snapshots")
    for topic in (names.SCHEMAS_TOPIC, LEDGER_TOPIC):
        out += _ops(
            apply, "TOPIC", topic, "LITERAL", (*manage, "READ", "WRITE"), "the registry and its ledger"
        )
    out += _ops(
        apply, "TRANSACTIONAL_ID", f"{names.PREFIX}-registry-", "PREFIXED", ("WRITE", "DESCRIBE"), "registry"
    )
    out += _ops(apply, "CLUSTER", "kafka-cluster", "LITERAL", ("ALTER", "DESCRIBE"), "ACLs")
    registry = f"User:{REGISTRY}"
    out += _ops(registry, "TOPIC", names.SCHEMAS_TOPIC, "LITERAL", ("READ", "WRITE", "DESCRIBE"), "its store")
    out += _ops(
        registry,
        "TRANSACTIONAL_ID",
        f"{names.PREFIX}-registry-",
        "PREFIXED",
        ("WRITE", "DESCRIBE"),
        "its store",
    )
    operator = f"User:{OPERATOR}"
    out += _ops(operator, "TOPIC", f"{names.PREFIX}.", "PREFIXED", ("DESCRIBE",), "lag")
    out += _ops(operator, "GROUP", f"{names.PREFIX}-", "PREFIXED", ("DESCRIBE",), "lag")
    out += _ops(operator, "TOPIC", "xhub.backlog.", "PREFIXED", ("READ",), "source backlogs")
    for family in ("xhub.audit.", "xhub.dlq."):
        out += _ops(operator, "TOPIC", family, "PREFIXED", ("READ",), "audit and dead letters")
    return set(out)


def ledger_owner(cfg: ConfigDir) -> str:
    """The name under which a config directory holds its ACLs in the ledger: its hubs (a hub's name is
    unique on a cluster: its topics carry it)."""
    return "hubs:" + ",".join(sorted(cfg.hubs))


@dataclass(frozen=True, order=True)
class LedgerEntry:
    """One config directory holds one ACL. ``owner`` "": written before the ledger knew owners."""

    owner: str
    acl: AclSpec

    @property
    def key(self) -> str:
        return f"{self.owner}|{self.acl.key}" if self.owner else self.acl.key

    def to_json(self) -> bytes:
        return json.dumps({**asdict(self.acl), "owner": self.owner}, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, value: bytes) -> LedgerEntry:
        fields = json.loads(value)
        owner = fields.pop("owner", "")
        return cls(owner, AclSpec(**fields))


@dataclass
class AclChanges:
    """ACLs to create (wanted, not on the cluster), to remove (held by this config alone, no longer
    wanted), to release (no longer wanted here, another config still holds them), and the ledger
    entries that record it."""

    create: list[AclSpec]
    remove: list[AclSpec]
    unchanged: int
    released: list[AclSpec] = field(default_factory=list)
    ledger_put: list[LedgerEntry] = field(default_factory=list)
    ledger_drop: list[str] = field(default_factory=list)  # ledger keys
    holders: dict[str, list[str]] = field(default_factory=dict)  # released ACL key -> other owners

    def lines(self) -> list[str]:
        return (
            [f"+ acl {a.text()}" for a in self.create]
            + [f"- acl {a.text()}" for a in self.remove]
            + [
                f"~ acl {a.text()}: no longer wanted here, kept: {', '.join(self.holders[a.key])} holds it"
                for a in self.released
            ]
        )

    @property
    def empty(self) -> bool:
        """Nothing for the cluster's ACLs (the ledger may still record a claim: bookkeeping)."""
        return not (self.create or self.remove or self.released)


def compute_acl_changes(
    desired: set[AclSpec], on_cluster: set[str], ledger: Iterable[LedgerEntry], owner: str
) -> AclChanges:
    """What config ``owner`` changes. ``on_cluster``: the keys of the ACLs the cluster has; ``ledger``:
    which config holds which ACL that apply created (an ACL made by hand is in no entry: never removed).

    An entry written before owners (owner "") counts as the applying config's, as the single-config
    ledger did, and moves under its name while still wanted.
    """
    wanted = {a.key: a for a in desired}
    entries = list(ledger)
    mine = {e.acl.key: e for e in entries if e.owner in (owner, "")}
    others: dict[str, list[str]] = {}
    for e in entries:
        if e.owner not in (owner, ""):
            others.setdefault(e.acl.key, []).append(e.owner)
    create = sorted(a for k, a in wanted.items() if k not in on_cluster)
    # recorded: what apply creates now, what another config's apply made (shared), a legacy entry moved
    recorded = [
        LedgerEntry(owner, a)
        for k, a in sorted(wanted.items())
        if k not in on_cluster or (k in others and k not in mine) or (k in mine and not mine[k].owner)
    ]
    let_go = sorted(e.acl for k, e in mine.items() if k not in wanted)
    drop = [e.key for k, e in sorted(mine.items()) if k not in wanted or not e.owner]
    return AclChanges(
        create=create,
        remove=[a for a in let_go if a.key not in others],
        unchanged=len(wanted) - len(create),
        released=[a for a in let_go if a.key in others],
        ledger_put=sorted(recorded),
        ledger_drop=drop,
        holders={a.key: sorted(others[a.key]) for a in let_go if a.key in others},
    )
