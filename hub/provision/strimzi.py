"""Strimzi resources from the config: a KafkaTopic per topic and a KafkaUser (with its ACLs) per party.

A district that runs Kafka under the Strimzi operator manages the cluster side from the same git directory
(``xhub plan CONFIG_DIR --output strimzi DIR``), as JulieOps does for topics. Nothing is derived here:
the topics are :func:`hub.provision.desired.desired_state`'s and the ACLs
:func:`hub.provision.acls.desired_acls`'s, so the operator creates exactly what ``xhub apply`` would.

Kubernetes names are DNS-1123 subdomains: a topic name that is not one (``_xhub_schemas``, an ``_`` in a
department id) gets a cleaned name with a hash of the real one, and the real one in ``spec.topicName``. A
KafkaUser's name is the common name of its certificate, so it cannot be changed: a party whose name is not
a Kubernetes name is a config error. The broker's super user gets no KafkaUser (Strimzi configures super
users on the Kafka resource).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from hub.config.loader import ConfigDir
from hub.core.errors import ConfigError
from hub.provision.acls import AclSpec, desired_acls
from hub.provision.credentials import parties
from hub.provision.desired import Desired, desired_state

GROUP = "kafka.strimzi.io"
API_VERSIONS = ("v1beta2", "v1")  # v1beta2: Strimzi up to 0.51; v1: 0.49 and later (the only one from 1.0)
CLUSTER_LABEL = "strimzi.io/cluster"
PURPOSE = "exchange-hub/purpose"
PARTY_KIND = "exchange-hub/party-kind"
TOPICS_FILE = "kafkatopics.yaml"
USERS_FILE = "kafkausers.yaml"

_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_K8S_NAME_MAX = 253
# The User Operator names the user's Secret after it and labels it with the name: a label value (63).
_USER_NAME_MAX = 63
_RESOURCE_TYPES = {
    "TOPIC": "topic",
    "GROUP": "group",
    "TRANSACTIONAL_ID": "transactionalId",
    "CLUSTER": "cluster",
}
_PATTERNS = {"LITERAL": "literal", "PREFIXED": "prefix"}
_OPERATIONS = {
    "READ": "Read",
    "WRITE": "Write",
    "CREATE": "Create",
    "DELETE": "Delete",
    "ALTER": "Alter",
    "DESCRIBE": "Describe",
    "ALTER_CONFIGS": "AlterConfigs",
    "DESCRIBE_CONFIGS": "DescribeConfigs",
    "IDEMPOTENT_WRITE": "IdempotentWrite",
    "ALL": "All",
}


@dataclass(frozen=True)
class StrimziTarget:
    """Where the resources go and how users authenticate.

    Args:
        cluster: the name of the Kafka resource the operator manages (label ``strimzi.io/cluster``).
        namespace: written into every resource when given (else ``kubectl -n`` decides).
        api_version: ``v1beta2`` or ``v1`` of ``kafka.strimzi.io``.
        authentication: ``tls`` (the User Operator issues each party's certificate) or ``tls-external``
            (the certificates of ``xhub credentials``, from the deployment's own CA).
        replicas: replication factor of every topic; None leaves it to the broker's default.
    """

    cluster: str
    namespace: str | None = None
    api_version: str = "v1beta2"
    authentication: Literal["tls", "tls-external"] = "tls"
    replicas: int | None = None


@dataclass(frozen=True)
class StrimziResources:
    topics: list[dict[str, Any]]
    users: list[dict[str, Any]]


def is_kubernetes_name(name: str, limit: int = _K8S_NAME_MAX) -> bool:
    return len(name) <= limit and _K8S_NAME.fullmatch(name) is not None


def topic_resource_name(topic: str) -> str:
    """The KafkaTopic's name for ``topic``: the topic itself when Kubernetes accepts it.

    Otherwise each dot-separated part is cleaned to ``[a-z0-9-]`` and a hash of the real name is appended,
    so two topics that clean to the same text (``a_b``, ``a-b``) still get two resources.
    """
    if is_kubernetes_name(topic):
        return topic
    parts = [re.sub(r"[^a-z0-9]+", "-", part.lower()).strip("-") for part in topic.split(".")]
    suffix = hashlib.sha256(topic.encode("utf-8")).hexdigest()[:8]
    base = ".".join(p for p in parts if p)[: _K8S_NAME_MAX - len(suffix) - 1].rstrip(".-")
    return f"{base}-{suffix}" if base else f"topic-{suffix}"


def _metadata(name: str, target: StrimziTarget, annotations: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if target.namespace:
        meta["namespace"] = target.namespace
    meta["labels"] = {CLUSTER_LABEL: target.cluster, "app.kubernetes.io/managed-by": "xhub"}
    meta["annotations"] = annotations
    return meta


def kafka_topics(desired: Desired, target: StrimziTarget) -> list[dict[str, Any]]:
    """A KafkaTopic per topic of ``desired``, sorted by topic name."""
    out: list[dict[str, Any]] = []
    for spec in sorted(desired.topics.values(), key=lambda t: t.name):
        body: dict[str, Any] = {"topicName": spec.name, "partitions": spec.partitions}
        if target.replicas is not None:
            body["replicas"] = target.replicas
        body["config"] = dict(sorted(spec.configs.items()))
        out.append(
            {
                "apiVersion": f"{GROUP}/{target.api_version}",
                "kind": "KafkaTopic",
                "metadata": _metadata(topic_resource_name(spec.name), target, {PURPOSE: spec.purpose}),
                "spec": body,
            }
        )
    return out


def acl_rules(acls: list[AclSpec]) -> list[dict[str, Any]]:
    """Strimzi's ACL rules for one principal: one rule per resource pattern with all its operations."""
    grouped: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for acl in acls:
        grouped[(acl.resource, acl.pattern, acl.name)].add(_OPERATIONS[acl.operation])
    rules: list[dict[str, Any]] = []
    for (resource, pattern, name), operations in sorted(grouped.items()):
        kind = _RESOURCE_TYPES[resource]
        # A cluster has no name in Strimzi's schema (Kafka's is always "kafka-cluster").
        pattern_of = {"type": kind} if kind == "cluster" else {"type": kind, "name": name}
        if kind != "cluster":
            pattern_of["patternType"] = _PATTERNS[pattern]
        rules.append({"resource": pattern_of, "type": "allow", "operations": sorted(operations)})
    return rules


def kafka_users(cfg: ConfigDir, acls: set[AclSpec], target: StrimziTarget) -> list[dict[str, Any]]:
    """A KafkaUser per party with ACLs, in :func:`parties` order.

    Raises:
        ConfigError: a party's name is not a Kubernetes name, or an ACL names a principal no party has.
    """
    by_principal: dict[str, list[AclSpec]] = defaultdict(list)
    for acl in acls:
        by_principal[acl.principal].append(acl)
    problems: list[str] = []
    out: list[dict[str, Any]] = []
    for party in parties(cfg):
        mine = by_principal.pop(party.principal, [])
        if not mine:
            continue  # the super user: Strimzi sets super users on the Kafka resource
        if not is_kubernetes_name(party.name, _USER_NAME_MAX):
            who = f"{party.kind} {party.owner!r}" if party.owner else party.kind
            problems.append(
                f"{who}: {party.principal!r} cannot name a KafkaUser (lowercase letters, digits, '-', '.', "
                f"at most {_USER_NAME_MAX}); its certificate carries that name: change the principal"
            )
            continue
        spec = {
            "authentication": {"type": target.authentication},
            "authorization": {"type": "simple", "acls": acl_rules(mine)},
        }
        out.append(
            {
                "apiVersion": f"{GROUP}/{target.api_version}",
                "kind": "KafkaUser",
                "metadata": _metadata(party.name, target, {PARTY_KIND: party.kind}),
                "spec": spec,
            }
        )
    problems += [
        f"ACLs for {principal!r}, which is no party of the config" for principal in sorted(by_principal)
    ]
    if problems:
        raise ConfigError(problems)
    return out


def strimzi_resources(cfg: ConfigDir, now: datetime, target: StrimziTarget) -> StrimziResources:
    """The KafkaTopics and KafkaUsers of ``cfg`` at ``now`` (an inactive subscription gets no Read).

    Raises:
        ConfigError: ``cfg`` does not validate, or a party cannot be a KafkaUser.
    """
    if target.api_version not in API_VERSIONS:
        raise ConfigError(f"Strimzi API version {target.api_version!r}: expected one of {API_VERSIONS}")
    if not is_kubernetes_name(target.cluster, _USER_NAME_MAX):
        raise ConfigError(f"Strimzi cluster {target.cluster!r} is not a Kubernetes name")
    return StrimziResources(
        topics=kafka_topics(desired_state(cfg), target),
        users=kafka_users(cfg, desired_acls(cfg, now), target),
    )


def write_resources(resources: StrimziResources, folder: Path) -> list[Path]:
    """``folder``/kafkatopics.yaml and kafkausers.yaml (multi-document), each rewritten whole.

    Whole files, so that a topic or a user the config no longer has shows as a removal in the git diff.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, docs in ((TOPICS_FILE, resources.topics), (USERS_FILE, resources.users)):
        path = folder / name
        header = "# Generated by `xhub plan --output strimzi`: edit the config directory, not this file.\n"
        text = yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True, width=1000)
        path.write_text(header + text, encoding="utf-8")
        written.append(path)
    return written
