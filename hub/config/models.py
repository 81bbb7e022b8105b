"""Pydantic models of the config directory (kept in git by integrators).

    hubs.yaml              kafka connection, registry, the exchange hubs
    departments/*.yaml     one department per file (or a list); its team owns its files (CODEOWNERS)
    catalog/[<owner>/]*.yaml  resources: code, owner, schema, key, share attribute, field classes
    subscriptions/<dept>/*.yaml  what a subscriber asks: fields, purpose, filter, masks (only stronger),
                           delivery (hub.config.layout: the folder is the subscriber's)
    grants/<owner>/*.yaml  what the owning department allows one subscription: its answer (approved /
                           refused), granted fields, personal fields in clear and on which legal basis,
                           minimum masks, filterable fields, sensitive fields released, validity

Every model forbids unknown keys, so a typo is an error with its file and line, not a silent default.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hub.catalog.codes import parse_resource_code
from hub.catalog.model import FieldClass, ShareAttribute
from hub.config.timezone import DEFAULT_TIMEZONE, ConfigTime, check_timezone
from hub.core.kafka_settings import KafkaSettings
from hub.policy.masks import MaskKind

_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MaskName = MaskKind  # the mask kinds the policy package implements, and no others


# A CODEOWNERS owner, as GitHub and GitLab write it: @user, @org/team (GitLab: @group/subgroup), or e-mail.
_TEAM = re.compile(r"^(@[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*|[^@\s]+@[^@\s]+\.[^@\s]+)$")


def _check_team(value: str | None) -> str | None:
    if value is not None and not _TEAM.match(value):
        raise ValueError(
            f'team "{value}" is not a CODEOWNERS owner: write @org/team-name, @username or an e-mail address'
        )
    return value


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f'{what} "{value}" must be lowercase letters, digits and "-", starting with a letter'
        )
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistrySettings(Strict):
    """Where the schema registry is. ``builtin`` = the registry the hub serves itself."""

    url: str | None = Field(
        default=None, description="URL of a Confluent-compatible registry; omit for built-in"
    )
    topic: str = "_xhub_schemas"


class ConfigSigning(Strict):
    """Which keys may sign the config snapshots a hub installs (the apply role's; see hub.config.signing).

    Public keys are not secrets: they may be written here. A hub trusts these and the keys of the
    environment variable; with neither it installs no applied config at all (secure by default).
    """

    public_keys: list[str] = Field(
        default_factory=list, description="Ed25519 public keys: 'ed25519:<base64>' or PEM"
    )
    public_key_env: str = Field(
        default="XHUB_CONFIG_PUBLIC_KEY", description="environment variable with more (comma-separated)"
    )


class HubSpec(Strict):
    """One exchange hub (共享交换枢纽). Several run side by side, each with its own topics and group."""

    name: str
    description: str = ""
    admin_port: int = Field(default=8090, ge=0, le=65535, description="status page, /metrics, /healthz")
    registry_port: int = Field(default=8081, ge=0, le=65535, description="built-in schema registry")
    pseudonym_secret: SecretStr | None = Field(
        default=None, description="HMAC key for pseudonym masks; prefer pseudonym_secret_env"
    )
    pseudonym_secret_env: str | None = Field(default=None, description="environment variable holding the key")
    audit_key_env: str | None = Field(
        default=None, description="environment variable holding the audit chain's HMAC key (only the hub's)"
    )
    audit_key_file: str | None = Field(
        default=None, description="secret file holding the audit key (e.g. /run/secrets/xhub-audit-key)"
    )
    batch_max_records: int = Field(default=500, ge=1)
    batch_max_ms: int = Field(default=100, ge=1)
    partitions: int = Field(default=3, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_id(v, "hub name")


class HubsFile(Strict):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)  # read the environment per load
    registry: RegistrySettings = RegistrySettings()
    config_signing: ConfigSigning = ConfigSigning()
    # Naive datetimes of every config file are read in this zone (hub.config.timezone).
    timezone: str = Field(default=DEFAULT_TIMEZONE, description="zone of naive datetimes, e.g. Asia/Shanghai")
    hubs: list[HubSpec]
    answer_within_working_days: int = Field(
        default=10,
        ge=1,
        description="working days an owner has to answer a share request (国发〔2016〕51号: 10)",
    )
    platform_team: str | None = Field(
        default=None,
        description="CODEOWNERS owner of hubs.yaml and departments/ (the hub operators), e.g. @org/platform",
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("platform_team")
    @classmethod
    def _platform_team(cls, v: str | None) -> str | None:
        return _check_team(v)


class Department(Strict):
    """A department (委办局) that owns resources and/or subscribes to them."""

    id: str
    name: str
    principal: str | None = Field(default=None, description="Kafka principal, e.g. User:court")
    systems: list[str] = Field(default_factory=list, description="business systems it captures from")
    # Who reviews its files in git (`xhub codeowners`); the hub never needs it, so snapshots leave it out.
    team: str | None = Field(
        default=None,
        exclude=True,
        description="CODEOWNERS owner of its subscriptions/<id>/, grants/<id>/ and catalog files, "
        "e.g. @pudong-gov/psb-data",
    )
    # Only `xhub lag` needs it (the hub serves a link like any subscriber), so snapshots leave it out.
    hub_link: bool = Field(
        default=False,
        exclude=True,
        description="this department is the hub link of a higher-level hub (federation): it reads its "
        "deliveries without a consumer group and keeps its position in that hub's cluster, so `xhub lag` "
        "here says so instead of counting its topic as unread",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v, "department id")

    @field_validator("team")
    @classmethod
    def _team(cls, v: str | None) -> str | None:
        return _check_team(v)


class LinkedFrom(Strict):
    """Where a linked resource comes from: a district hub delivering it to this (city) config's link.

    The district publishes the terms of the link's subscription (``xhub plan --terms SUBSCRIPTION``: the
    fields that climb, each field's mask and the grant or catalog line that set it); this config keeps a
    copy, so ``xhub validate`` can refuse a grant here that widens what the district allowed.
    """

    hub: str = Field(description="the district hub that delivers the resource")
    subscription: str = Field(description="the link's subscription at that hub")
    terms: str = Field(description="the district's published delivery terms (JSON), relative to this config")


class Resource(Strict):
    """A catalog entry: one data resource, one code (一数一码)."""

    code: str
    name: str
    owner: str = Field(description="department id answering for accuracy and security")
    schema_: str = Field(
        alias="schema", description="Avro schema: a shipped name (resources/x.avsc) or a path"
    )
    key: str = Field(description="business-key field")
    key_format: Literal["citizen_id", "credit_code", "any"] = "any"
    share: ShareAttribute
    legal_basis: str | None = Field(default=None, description="required unless share is unconditional")
    update_cycle: Literal["realtime", "hourly", "daily", "weekly", "monthly", "yearly"] = "realtime"
    fields: dict[str, FieldClass] = Field(description="classification of every field of the schema")
    checks: dict[str, Literal["citizen_id", "credit_code"]] = Field(
        default_factory=dict, description="GB 11643 / GB 32100 checks on fields besides the key"
    )
    default_masks: dict[str, MaskName] = Field(
        default_factory=dict,
        description="the owner's default mask per personal field, for every subscriber (a grant may lift it)",
    )
    filterable: list[str] = Field(
        default_factory=list,
        description="fields every subscriber may filter on even where it does not see them in clear",
    )
    linked_from: LinkedFrom | None = Field(
        default=None,
        description="a district hub's delivery, carried here by a hub link: its owner is the link's "
        "department, and this config can only narrow what the district allowed",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        parse_resource_code(v)
        return v


class Grant(Strict):
    """The owning department's answer to one subscription (共享申请的答复), kept in ``grants/<owner>/``.

    For a conditional resource nothing is delivered without an approving grant; for an unconditional one
    a grant adds to the catalog defaults (fields in clear, filterable fields, sensitive fields released).
    A subscriber never writes a grant: what it asks for is in its subscription, what it gets is
    requested ∩ granted ∩ classified.
    """

    subscription: str = Field(description="id of the subscription answered")
    resource: str = Field(description="catalog code; owned by the department of the grant's folder")
    decision: Literal["approved", "refused"]
    reason: str | None = Field(default=None, description="required when refused: a refusal gives reasons")
    legal_basis: str | None = Field(
        default=None,
        description="required when refused (the law or rule that keeps the data back) and when any field is "
        "in clear (the basis that allows it)",
    )
    approver: str | None = Field(default=None, description="person or office of the owning department")
    reference: str | None = Field(default=None, description="document number of the answer")
    decided_at: ConfigTime | None = None
    valid_until: ConfigTime | None = Field(default=None, description="delivery stops at this time")
    fields: list[str] | None = Field(default=None, description="fields granted; None = all requested")
    clear: list[str] = Field(default_factory=list, description="personal fields allowed in clear")
    min_masks: dict[str, MaskName] = Field(
        default_factory=dict, description="minimum mask per personal field (the subscriber may strengthen)"
    )
    filterable: list[str] = Field(
        default_factory=list, description="fields the subscriber may filter on without seeing them in clear"
    )
    release_sensitive: list[str] = Field(default_factory=list, description="sensitive fields released")


class Delivery(Strict):
    """How the subscriber's delivery topic is set up."""

    partitions: int | None = Field(default=None, ge=1)
    retention_ms: int | None = Field(default=None, ge=-1)
    backfill: bool = Field(default=True, description="send the current state (op=r) when first subscribed")


class Subscription(Strict):
    """A department's standing request for one resource, kept in git (written by the subscriber).

    What it receives is decided with the owner's grant (``grants/<owner>/``) and the catalog entry: see
    ``hub.policy.entitlement``.
    """

    id: str
    subscriber: str
    resource: str
    hub: str
    fields: list[str]
    purpose: str
    legal_basis: str | None = Field(
        default=None, description="the subscriber's stated basis, kept with its purpose; never lifts a mask"
    )
    filter: str | None = Field(
        default=None, description='row filter (CEL subset), e.g. district == "浦东新区"'
    )
    masks: dict[str, MaskName] = Field(
        default_factory=dict,
        description="masks asked for; they only strengthen the owner's (grant minimum, catalog default)",
    )
    valid_from: ConfigTime | None = None
    valid_until: ConfigTime | None = None
    requested_at: ConfigTime | None = Field(
        default=None,
        description="when a request was filed, for one filed before xhub apply kept track (apply dates "
        "every request it first publishes, and keeps that date); it starts the owner's answer deadline",
    )
    # Refused by the cross-checks with a hint: the answer to a request is the owner's (grants/<owner>/).
    approval: object | None = Field(default=None, exclude=True, json_schema_extra={"deprecated": True})
    delivery: Delivery = Delivery()
    active: bool = Field(default=True, description="false = revoked; nothing is delivered")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v, "subscription id")


class DepartmentsFile(Strict):
    departments: list[Department]


class CatalogFile(Strict):
    resources: list[Resource]


class SubscriptionsFile(Strict):
    subscriptions: list[Subscription]


class GrantsFile(Strict):
    grants: list[Grant]


def json_schema() -> dict[str, Any]:
    """JSON Schema of every config file kind, for editors (``xhub schema``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "exchange-hub config directory",
        "files": {
            "hubs.yaml": HubsFile.model_json_schema(by_alias=True),
            "departments/*.yaml": DepartmentsFile.model_json_schema(by_alias=True),
            "catalog/*.yaml": CatalogFile.model_json_schema(by_alias=True),
            "subscriptions/<dept>/*.yaml": SubscriptionsFile.model_json_schema(by_alias=True),
            "grants/<owner>/*.yaml": GrantsFile.model_json_schema(by_alias=True),
        },
    }
