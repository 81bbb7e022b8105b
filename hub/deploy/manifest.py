"""What every rendered manifest shares: names, labels, the config volume, the pod security, YAML output."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML

from hub.deploy.configmap import ConfigFiles

Manifest = dict[str, Any]

CONFIG_MOUNT = "/etc/xhub/config"
SECRETS_MOUNT = "/run/secrets/xhub"
NON_ROOT_UID = 10001  # the user of deploy/container/Containerfile


@dataclass(frozen=True)
class Placement:
    """Where and with what the manifests run."""

    namespace: str
    image: str
    workers: int


def labels(component: str, instance: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "exchange-hub",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": instance,
    }


def meta(name: str, place: Placement, component: str, instance: str) -> dict[str, Any]:
    return {"name": name, "namespace": place.namespace, "labels": labels(component, instance)}


def config_map(name: str, files: ConfigFiles, place: Placement, instance: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(name, place, "config", instance),
        "data": files.data,
    }


def config_volume(name: str, files: ConfigFiles) -> dict[str, Any]:
    items = [{"key": key, "path": path} for key, path in sorted(files.paths.items())]
    return {"name": "config", "configMap": {"name": name, "items": items}}


def restricted_security() -> dict[str, Any]:
    """The container side of the "restricted" Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def dump_yaml(doc: dict[str, Any]) -> str:
    """Block-style YAML, Chinese kept readable, long lines unbroken."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    yaml.width = 4096
    yaml.representer.add_representer(str, _text_as_block)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _text_as_block(representer: Any, text: str) -> Any:
    """Files in a ConfigMap as ``|`` blocks, so the rendered manifest reads like the file."""
    style = "|" if "\n" in text else None
    return representer.represent_scalar("tag:yaml.org,2002:str", text, style=style)
