"""``xhub k8s``: the rendered manifests are valid Kubernetes objects, and what runs inside them is valid
for exchange-hub (args the CLI takes, a config directory and connector config its loaders accept).

Kubernetes objects are checked with kubernetes-validate (strict: unknown fields refused) against
KUBERNETES_VERSION; the ServiceMonitor against the prometheus-operator CRD vendored in
deploy/k8s/schemas (source in deploy/k8s/README.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.cli import build_parser
from hub.config import load_config
from hub.deploy.render import ClusterSettings, render, write_manifests

try:
    import jsonschema
    import kubernetes_validate
except ImportError as exc:  # a missing tool fails, never skips
    raise ImportError(f"{exc}: pip install -c constraints.txt -e '.[test]'") from exc

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "deploy/demo/config"
CHECKED_IN = REPO / "deploy/k8s/demo"
SERVICE_MONITOR_CRD = REPO / "deploy/k8s/schemas/monitoring.coreos.com_servicemonitors.yaml"
KUBERNETES_VERSION = "1.37.0"  # the newest kubernetes-validate ships; bump with it
DEMO_SETTINGS = ClusterSettings(
    hub="pudong",
    namespace="xhub",
    image="localhost/exchange-hub:0.1.0",
    workers=3,
    bootstrap_servers="xhub-kafka-bootstrap.kafka.svc:9092",
)


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    return render(load_config(DEMO_CONFIG), DEMO_CONFIG, DEMO_SETTINGS)


def _all(manifests: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [m for group in manifests.values() for m in group]


def _of_kind(manifests: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [m for m in _all(manifests) if m["kind"] == kind]


def test_every_builtin_object_is_valid_for_kubernetes(manifests: dict[str, list[dict[str, Any]]]) -> None:
    checked = 0
    for manifest in _all(manifests):
        if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{manifest['kind']} {manifest['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )
        checked += 1
    assert checked >= 9


def test_service_monitor_matches_the_prometheus_operator_crd(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    crd = yaml.safe_load(SERVICE_MONITOR_CRD.read_text(encoding="utf-8"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = version["schema"]["openAPIV3Schema"]
    (monitor,) = _of_kind(manifests, "ServiceMonitor")
    jsonschema.validate(monitor, schema)
    # It selects the admin Service by its labels, on a port that Service names.
    (admin,) = [s for s in _of_kind(manifests, "Service") if s["metadata"]["name"] == "xhub-pudong-admin"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= admin["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in admin["spec"]["ports"]}


def test_hub_workers_probe_health_and_readiness_on_the_admin_port(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    (workers,) = _of_kind(manifests, "StatefulSet")
    assert workers["spec"]["replicas"] == 3
    (container,) = workers["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert container["securityContext"]["runAsNonRoot"] is True
    (budget,) = _of_kind(manifests, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == workers["spec"]["selector"]["matchLabels"]


def test_container_args_are_commands_the_cli_takes(manifests: dict[str, list[dict[str, Any]]]) -> None:
    parser = build_parser()
    pods = [
        m["spec"]["template"]["spec"] for m in _all(manifests) if m["kind"] in ("StatefulSet", "Deployment")
    ]
    commands = set()
    for pod in pods:
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            if "args" not in container:
                continue  # the department's own application
            args = [a.replace("$(XHUB_WORKER_ID)", "2") for a in container["args"]]
            parsed = parser.parse_args(args)
            commands.add(parsed.command)
            if parsed.command == "run":
                assert (parsed.worker_id, parsed.admin_host, parsed.admin_port) == (2, "0.0.0.0", 8090)
    assert commands == {"run", "registry", "connector"}


def test_secrets_are_referenced_never_rendered(manifests: dict[str, list[dict[str, Any]]]) -> None:
    assert not _of_kind(manifests, "Secret")
    (workers,) = _of_kind(manifests, "StatefulSet")
    volumes = {v["name"]: v for v in workers["spec"]["template"]["spec"]["volumes"]}
    assert volumes["keys"]["secret"]["secretName"] == "xhub-pudong-keys"


def _mount(config_map: dict[str, Any], volume: dict[str, Any], into: Path) -> None:
    """Write a ConfigMap's files where its volume's items put them (as the kubelet does)."""
    paths = {item["key"]: item["path"] for item in volume["configMap"].get("items", [])}
    for key, text in config_map["data"].items():
        target = into / paths.get(key, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def test_the_mounted_config_and_connector_load(
    manifests: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    from connectors.config import load_connector_config

    (app,) = [m for m in manifests["amr"] if m["kind"] == "Deployment"]
    pod = app["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar
    volumes = {v["name"]: v for v in pod["volumes"]}
    maps = {m["metadata"]["name"]: m for m in manifests["amr"] if m["kind"] == "ConfigMap"}
    for mount in sidecar["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            _mount(maps[volume["configMap"]["name"]], volume, tmp_path / mount["mountPath"].lstrip("/"))
    config_dir = tmp_path / "etc/xhub/config"
    cfg = load_config(config_dir)
    assert cfg.hubs_file.kafka.bootstrap_servers == DEMO_SETTINGS.bootstrap_servers
    assert cfg.hubs_file.registry.url == "http://xhub-registry.xhub.svc:8081"
    # Everything but hubs.yaml is the config directory byte for byte.
    for source in DEMO_CONFIG.rglob("*.yaml"):
        relative = source.relative_to(DEMO_CONFIG)
        if relative.as_posix() != "hubs.yaml":
            assert (config_dir / relative).read_bytes() == source.read_bytes(), relative
    loaded = load_connector_config(tmp_path / "etc/xhub/connector/connector.yaml")
    assert loaded.registry_url == "http://xhub-registry.xhub.svc:8081"
    kinds = {s.type for s in loaded.config.sources}
    assert kinds == {"http_push", "postgres"}
    push = next(s for s in loaded.config.sources if s.type == "http_push")
    assert push.host == "127.0.0.1"  # loopback: only the application in the pod reaches it


def test_checked_in_manifests_are_the_rendered_ones(tmp_path: Path) -> None:
    written = write_manifests(load_config(DEMO_CONFIG), DEMO_CONFIG, DEMO_SETTINGS, tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_text(encoding="utf-8") for p in written}
    stored = {
        p.relative_to(CHECKED_IN).as_posix(): p.read_text(encoding="utf-8")
        for p in CHECKED_IN.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert stored == fresh, (
        "deploy/k8s/demo is stale: xhub k8s deploy/demo/config --hub pudong --out deploy/k8s/demo "
        "--bootstrap xhub-kafka-bootstrap.kafka.svc:9092"
    )
