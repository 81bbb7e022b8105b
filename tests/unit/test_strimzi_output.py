"""`xhub plan --output strimzi`: the resources validate against Strimzi's CRDs and carry exactly the
topics of desired_state and the ACLs of desired_acls (nothing lost or invented on the way)."""

from __future__ import annotations

import hashlib
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hub.cli import main
from hub.config import load_config
from hub.core.errors import ConfigError
from hub.provision.acls import desired_acls
from hub.provision.desired import desired_state
from hub.provision.strimzi import (
    StrimziTarget,
    is_kubernetes_name,
    strimzi_resources,
    topic_resource_name,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "deploy" / "demo" / "config"
CRDS = ROOT / "deploy" / "strimzi" / "crds"
CRD_FILES = {"KafkaTopic": "043-Crd-kafkatopic.yaml", "KafkaUser": "044-Crd-kafkauser.yaml"}
NOW = datetime(2026, 9, 1, tzinfo=UTC)
_OPS = {"AlterConfigs": "ALTER_CONFIGS", "DescribeConfigs": "DESCRIBE_CONFIGS"}
_TYPES = {"topic": "TOPIC", "group": "GROUP", "transactionalId": "TRANSACTIONAL_ID", "cluster": "CLUSTER"}


def _schema(kind: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / CRD_FILES[kind]).read_text(encoding="utf-8"))
    assert crd["spec"]["names"]["kind"] == kind
    (found,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert found["served"], f"{kind} {version} is not served by the vendored CRD"
    schema: dict[str, Any] = found["schema"]["openAPIV3Schema"]
    return schema


def _validate(resource: dict[str, Any]) -> None:
    """The whole resource against its CRD's openAPIV3Schema for its version; metadata as Kubernetes would."""
    group, version = resource["apiVersion"].split("/")
    assert group == "kafka.strimzi.io"
    jsonschema.Draft4Validator(_schema(resource["kind"], version)).validate(resource)
    meta = resource["metadata"]
    assert is_kubernetes_name(meta["name"]), meta["name"]
    assert meta["labels"]["strimzi.io/cluster"]


def test_vendored_crds_are_the_named_release_files() -> None:
    source = (CRDS / "SOURCE.md").read_text(encoding="utf-8")
    for name in CRD_FILES.values():
        digest = hashlib.sha256((CRDS / name).read_bytes()).hexdigest()
        assert f"{digest}  {name}" in source, f"{name} differs from the release file SOURCE.md names"


@pytest.mark.parametrize("version", ["v1beta2", "v1"])
def test_demo_resources_validate_against_the_crds(version: str) -> None:
    resources = strimzi_resources(
        load_config(DEMO), NOW, StrimziTarget("district", namespace="xhub", api_version=version, replicas=3)
    )
    assert resources.topics
    assert resources.users
    for resource in [*resources.topics, *resources.users]:
        _validate(resource)
    names = [r["metadata"]["name"] for r in resources.topics]
    assert len(names) == len(set(names))


def test_the_validation_catches_a_wrong_resource() -> None:
    """The schemas are not vacuous: a typo in a rule is refused."""
    (user, *_) = strimzi_resources(load_config(DEMO), NOW, StrimziTarget("district")).users
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(user)


def test_topics_are_those_of_desired_state() -> None:
    cfg = load_config(DEMO)
    desired = desired_state(cfg)
    topics = strimzi_resources(cfg, NOW, StrimziTarget("district")).topics
    rendered = {t["spec"]["topicName"]: t["spec"] for t in topics}
    assert set(rendered) == set(desired.topics)
    for name, spec in desired.topics.items():
        assert rendered[name]["partitions"] == spec.partitions
        assert rendered[name]["config"] == spec.configs
        assert "replicas" not in rendered[name]  # the broker's default.replication.factor decides


def test_acls_are_exactly_those_of_desired_acls() -> None:
    cfg = load_config(DEMO)
    wanted = {(a.principal, a.resource, a.pattern, a.name, a.operation) for a in desired_acls(cfg, NOW)}
    got = set()
    for user in strimzi_resources(cfg, NOW, StrimziTarget("district")).users:
        principal = f"User:{user['metadata']['name']}"
        for rule in user["spec"]["authorization"]["acls"]:
            resource = rule["resource"]
            kind = _TYPES[resource["type"]]
            pattern = {"literal": "LITERAL", "prefix": "PREFIXED"}.get(resource.get("patternType"), "LITERAL")
            name = resource.get("name", "kafka-cluster")
            for op in rule["operations"]:
                got.add((principal, kind, pattern, name, _OPS.get(op, op.upper())))
    assert got == wanted


def test_a_subscription_not_in_force_gets_no_read_on_its_delivery_topic() -> None:
    """transport-persons has no grant in the demo (refused: no_grant): its topic exists, no one reads it."""
    resources = strimzi_resources(load_config(DEMO), NOW, StrimziTarget("district"))
    topic = "xhub.dlv.pudong.transport-persons"
    assert topic in {t["spec"]["topicName"] for t in resources.topics}
    readers = [
        u["metadata"]["name"]
        for u in resources.users
        for rule in u["spec"]["authorization"]["acls"]
        if rule["resource"].get("name") == topic
    ]
    assert readers == []


def test_topic_names_kubernetes_refuses_are_cleaned_and_stay_distinct() -> None:
    assert topic_resource_name("xhub.src.amr.pd-crd-0001") == "xhub.src.amr.pd-crd-0001"
    cleaned = [
        topic_resource_name(t) for t in ("_xhub_schemas", "xhub.dlq.tax_office", "xhub.dlq.tax-office")
    ]
    assert all(is_kubernetes_name(n) for n in cleaned)
    assert len(set(cleaned)) == 3
    assert re.fullmatch(r"xhub-schemas-[0-9a-f]{8}", cleaned[0])


def test_a_principal_that_cannot_name_a_kafka_user_is_a_config_error(tmp_path: Path) -> None:
    root = tmp_path / "config"
    shutil.copytree(DEMO, root)
    amr = root / "departments" / "amr.yaml"
    amr.write_text(amr.read_text(encoding="utf-8").replace("User:amr", "User:AMR_Data"), encoding="utf-8")
    with pytest.raises(ConfigError, match="AMR_Data"):
        strimzi_resources(load_config(root), NOW, StrimziTarget("district"))


def test_cli_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "strimzi"
    argv = ["plan", str(DEMO), "--output", "strimzi", str(out), "--strimzi-cluster", "district"]
    assert main([*argv, "--strimzi-api-version", "v1", "--external-certificates"]) == 0
    assert "KafkaTopics" in capsys.readouterr().out
    users = list(yaml.safe_load_all((out / "kafkausers.yaml").read_text(encoding="utf-8")))
    topics = list(yaml.safe_load_all((out / "kafkatopics.yaml").read_text(encoding="utf-8")))
    for resource in [*users, *topics]:
        assert resource["apiVersion"] == "kafka.strimzi.io/v1"
        _validate(resource)
    assert {u["spec"]["authentication"]["type"] for u in users} == {"tls-external"}
    assert "xhub-admin" not in {u["metadata"]["name"] for u in users}  # super users live on the Kafka CR


def test_cli_needs_the_cluster_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(DEMO), "--output", "strimzi", str(tmp_path)]) == 1
    assert "--strimzi-cluster" in capsys.readouterr().err
