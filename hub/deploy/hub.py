"""The hub in a cluster: its workers, their services, a disruption budget, a ServiceMonitor; the registry.

The workers are a StatefulSet, not a Deployment: a worker's number (``--worker-id``) names its
transactional id, its audit chain and its static group membership, so a restarted pod must come back with
the same number (a Deployment's pods get random names; a new number would start a new audit chain and
leave the old transactional id unfenced). The pod's ordinal reaches ``--worker-id`` through the
``apps.kubernetes.io/pod-index`` label. The state store is an ``emptyDir``: a worker restores it from
``xhub.state.<hub>`` when it starts.

Secrets never appear here, only their names: the Secret ``xhub-<hub>-keys`` is mounted as
``XHUB_SECRETS_DIR`` (files named like the environment variables hubs.yaml names, in lower case: the
pseudonym secret and the audit key), and carries the apply role's public key for ``config_signing``.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from hub.config.loader import ConfigDir
from hub.deploy.configmap import ConfigFiles
from hub.deploy.manifest import (
    CONFIG_MOUNT,
    NON_ROOT_UID,
    SECRETS_MOUNT,
    Manifest,
    Placement,
    config_map,
    config_volume,
    labels,
    meta,
    restricted_security,
)

ADMIN_PORT = 8090
REGISTRY_PORT = 8081
REGISTRY_NAME = "xhub-registry"
STATE_MOUNT = "/var/lib/xhub/state"


def hub_name(hub: str) -> str:
    return f"xhub-{hub}"


def hub_manifests(cfg: ConfigDir, hub: str, files: ConfigFiles, place: Placement) -> list[Manifest]:
    """ConfigMap, StatefulSet, Services, PodDisruptionBudget and ServiceMonitor of ``hub``."""
    name = hub_name(hub)
    selector = labels("hub", hub)
    return [
        config_map(f"{name}-config", files, place, hub),
        _statefulset(cfg, hub, files, place),
        {  # the StatefulSet's governing service: stable pod names, no load balancing
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(f"{name}-workers", place, "hub", hub),
            "spec": {"clusterIP": "None", "selector": selector, "ports": [_admin_port()]},
        },
        {  # what the ServiceMonitor scrapes (and an operator port-forwards to for the status page)
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(f"{name}-admin", place, "hub", hub),
            "spec": {"selector": selector, "ports": [_admin_port()]},
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(name, place, "hub", hub),
            # One worker at a time: its partitions move to the others while it is away.
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": meta(name, place, "hub", hub),
            "spec": {
                "selector": {"matchLabels": selector},
                "namespaceSelector": {"matchNames": [place.namespace]},
                "endpoints": [{"port": "admin", "path": "/metrics", "interval": "15s"}],
            },
        },
    ]


def registry_manifests(
    cfg: ConfigDir, files: ConfigFiles, config_name: str, place: Placement
) -> list[Manifest]:
    """The built-in registry on its own (``xhub registry``), shared by the hub's workers and the sidecars.

    Its writers share one transactional id (hub.registry.store), so two replicas are safe.
    """
    selector = labels("registry", REGISTRY_NAME)
    container = {
        "name": "registry",
        "image": place.image,
        "args": ["registry", CONFIG_MOUNT, "--host", "0.0.0.0", "--port", str(REGISTRY_PORT)],  # noqa: S104
        "ports": [{"name": "http", "containerPort": REGISTRY_PORT}],
        "readinessProbe": {"httpGet": {"path": "/subjects", "port": "http"}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 20, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": restricted_security(),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True}],
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(REGISTRY_NAME, place, "registry", REGISTRY_NAME),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector, "annotations": {"xhub/config-sha256": files.digest}},
                    "spec": {"containers": [container], "volumes": [config_volume(config_name, files)]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(REGISTRY_NAME, place, "registry", REGISTRY_NAME),
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": REGISTRY_PORT, "targetPort": "http"}],
            },
        },
    ]


def _admin_port() -> dict[str, Any]:
    return {"name": "admin", "port": ADMIN_PORT, "targetPort": "admin"}


def _statefulset(cfg: ConfigDir, hub: str, files: ConfigFiles, place: Placement) -> Manifest:
    name = hub_name(hub)
    selector = labels("hub", hub)
    spec = cfg.hub(hub)
    signing_env = cfg.hubs_file.config_signing.public_key_env
    env: list[dict[str, Any]] = [
        # The ordinal of the pod (0..N-1) is the worker's number; Kubernetes expands $(XHUB_WORKER_ID).
        {
            "name": "XHUB_WORKER_ID",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}},
        },
        {"name": "XHUB_SECRETS_DIR", "value": SECRETS_MOUNT},
        {"name": "XHUB_STATE_DIR", "value": STATE_MOUNT},
        {
            "name": signing_env,
            "valueFrom": {"secretKeyRef": {"name": f"{name}-keys", "key": signing_env.lower()}},
        },
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
        {"name": "keys", "mountPath": SECRETS_MOUNT, "readOnly": True},
        {"name": "state", "mountPath": STATE_MOUNT},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the container's own tmpfs, root is read-only
    ]
    if spec.audit_key_file:  # a file path in hubs.yaml: the same Secret's key, mounted at that path
        path = PurePosixPath(spec.audit_key_file)
        mounts.append({"name": "keys", "mountPath": str(path), "subPath": path.name, "readOnly": True})
    container = {
        "name": "hub",
        "image": place.image,
        "args": [
            "run",
            CONFIG_MOUNT,
            "--hub",
            hub,
            "--worker-id",
            "$(XHUB_WORKER_ID)",
            "--admin-host",
            "0.0.0.0",  # noqa: S104 - probes and Prometheus reach the pod's address
            "--admin-port",
            str(ADMIN_PORT),
        ],
        "env": env,
        "ports": [{"name": "admin", "containerPort": ADMIN_PORT}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "admin"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "admin"}, "periodSeconds": 5},
        # Restoring the state store and reading the registry topic come before the first /readyz 200.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "admin"},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},  # README: ~1.5-2 GB for Pudong's 10,000 subscriptions in one worker
        },
        "securityContext": restricted_security(),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(name, place, "hub", hub),
        "spec": {
            "serviceName": f"{name}-workers",
            "replicas": place.workers,
            "podManagementPolicy": "Parallel",  # workers do not wait for each other
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector, "annotations": {"xhub/config-sha256": files.digest}},
                "spec": {
                    # A batch in hand is committed or aborted on SIGTERM; give it the transaction's time.
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {"fsGroup": NON_ROOT_UID},
                    "containers": [container],
                    "volumes": [
                        config_volume(f"{name}-config", files),
                        {"name": "keys", "secret": {"secretName": f"{name}-keys", "defaultMode": 0o400}},
                        {"name": "state", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }
