"""``xhub k8s``: what to render (the settings) and the files written, one manifest per file.

    OUT/hub/        the hub's ConfigMap, StatefulSet, Services, PodDisruptionBudget, ServiceMonitor,
                    and the registry (Deployment, Service)
    OUT/<dept>/     the department example: config copy, connector config, application + sidecar

``kubectl apply -R -f OUT`` applies it once the Secrets exist (SECRETS.txt in OUT names them and their
keys; their values never pass through here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hub.config.loader import ConfigDir
from hub.core.errors import ConfigError
from hub.deploy.configmap import config_files
from hub.deploy.department import department_manifests
from hub.deploy.hub import REGISTRY_NAME, REGISTRY_PORT, hub_manifests, hub_name, registry_manifests
from hub.deploy.manifest import Manifest, Placement, dump_yaml


@dataclass(frozen=True)
class ClusterSettings:
    """What ``xhub k8s`` renders.

    Attributes:
        hub: the hub of hubs.yaml whose workers run.
        namespace: the hub's namespace (the department example gets a namespace named after it).
        image: the image of deploy/container/Containerfile.
        workers: hub workers (pods of the StatefulSet).
        bootstrap_servers: Kafka as the pods reach it; replaces hubs.yaml's in the ConfigMap.
        department: the department of the sidecar example (default: the first owning a resource).
    """

    hub: str
    namespace: str
    image: str
    workers: int
    bootstrap_servers: str
    department: str | None = None

    @property
    def registry_url(self) -> str:
        return f"http://{REGISTRY_NAME}.{self.namespace}.svc:{REGISTRY_PORT}"


def render(cfg: ConfigDir, config_dir: Path, settings: ClusterSettings) -> dict[str, list[Manifest]]:
    """The manifests by folder ("hub", the department's id).

    Raises:
        ConfigError: an unknown hub or department, no worker, or a config too large for a ConfigMap.
    """
    if settings.hub not in cfg.hubs:
        raise ConfigError(f'hub "{settings.hub}" is not in hubs.yaml (known: {", ".join(sorted(cfg.hubs))})')
    if settings.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {settings.workers}")
    dept = settings.department or min(res.owner for res in cfg.resources.values())
    if dept not in cfg.departments:
        raise ConfigError(f'department "{dept}" is not in departments/*.yaml')
    files = config_files(
        config_dir, bootstrap_servers=settings.bootstrap_servers, registry_url=settings.registry_url
    )
    place = Placement(settings.namespace, settings.image, settings.workers)
    config_name = f"{hub_name(settings.hub)}-config"
    return {
        "hub": [
            *hub_manifests(cfg, settings.hub, files, place),
            *registry_manifests(cfg, files, config_name, place),
        ],
        dept: department_manifests(cfg, dept, settings.hub, files, Placement(dept, settings.image, 1)),
    }


def write_manifests(cfg: ConfigDir, config_dir: Path, settings: ClusterSettings, out: Path) -> list[Path]:
    """Render and write one YAML file per manifest under ``out``; returns the paths written."""
    written: list[Path] = []
    for folder, manifests in render(cfg, config_dir, settings).items():
        (out / folder).mkdir(parents=True, exist_ok=True)
        for manifest in manifests:
            path = out / folder / f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"
            path.write_text(dump_yaml(manifest), encoding="utf-8")
            written.append(path)
    secrets = out / "SECRETS.txt"
    secrets.write_text(secrets_needed(cfg, settings), encoding="utf-8")
    return [*written, secrets]


def secrets_needed(cfg: ConfigDir, settings: ClusterSettings) -> str:
    """The Secrets the manifests mount, as the kubectl commands that create them (values left out)."""
    spec = cfg.hub(settings.hub)
    keys = [
        name.lower()
        for name in (
            spec.pseudonym_secret_env,
            spec.audit_key_env,
            cfg.hubs_file.config_signing.public_key_env,
        )
        if name
    ]
    if spec.audit_key_file:
        keys.append(Path(spec.audit_key_file).name)
    dept = settings.department or min(res.owner for res in cfg.resources.values())
    hub_keys = " ".join(f"--from-file={key}=..." for key in keys)
    return (
        "# Secrets the manifests mount; create them before `kubectl apply -R -f .` (values never in git):\n"
        f"kubectl -n {settings.namespace} create secret generic {hub_name(settings.hub)}-keys {hub_keys}\n"
        f"kubectl -n {dept} create secret generic {dept}-sidecar --from-file=xhub_push_token=... "
        "--from-file=pgpassword=...\n"
    )
