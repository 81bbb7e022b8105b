"""A department's application pod with the connector as a sidecar container: the example to adapt.

The sidecar is a native sidecar (an init container with ``restartPolicy: Always``, Kubernetes 1.29+): it
starts before the application and stops after it, so the application can push from its first request.
Its sources follow the config: the department's first resource arrives by HTTP push from the application
on ``127.0.0.1`` (loopback: no TLS needed, the token still required), the others are captured from the
department's PostgreSQL (``type: postgres``: logical decoding when the server allows it, else triggers;
the DSN names host, database and role; libpq takes the password from ``PGPASSWORD``, from a Secret).
Its subscriptions in this hub land in the same database. The health port listens on the pod's address
for the kubelet's probes and Prometheus; it also takes ``POST /snapshot``, so a NetworkPolicy should
admit only the monitoring namespace to it.

The pod lives in the department's namespace, which cannot read the hub's ConfigMap: it gets its own copy
of the config directory (the sidecar reads the catalog and hubs.yaml from it).
"""

from __future__ import annotations

from typing import Any

from hub.config.loader import ConfigDir
from hub.core.errors import ConfigError
from hub.deploy.configmap import ConfigFiles
from hub.deploy.manifest import (
    CONFIG_MOUNT,
    SECRETS_MOUNT,
    Manifest,
    Placement,
    config_map,
    config_volume,
    dump_yaml,
    meta,
    restricted_security,
)

CONNECTOR_MOUNT = "/etc/xhub/connector"
HEALTH_PORT = 8790
PUSH_PORT = 8791
PUSH_TOKEN_SECRET = "push_token"  # noqa: S105 - the name of the secret, not its value


def connector_config(cfg: ConfigDir, dept: str, hub: str) -> dict[str, Any]:
    """The sidecar's connector config (``xhub connector run --config``) for ``dept``.

    Raises:
        ConfigError: the department owns no resource and subscribes to nothing in ``hub``.
    """
    owned = sorted(code for code, res in cfg.resources.items() if res.owner == dept)
    subscribed = sorted(s.id for s in cfg.subscriptions.values() if s.subscriber == dept and s.hub == hub)
    if not owned and not subscribed:
        raise ConfigError(f'department "{dept}" owns no resource and subscribes to nothing in hub "{hub}"')
    database = f"host={dept}-db dbname={dept} user=xhub_sidecar"  # password: PGPASSWORD
    sources: list[dict[str, Any]] = []
    if owned:
        sources.append(
            {
                "name": "push",
                "type": "http_push",
                "resources": owned[:1],
                "host": "127.0.0.1",
                "port": PUSH_PORT,
                "token_secret": PUSH_TOKEN_SECRET,
            }
        )
    sources += [
        {
            "name": code.lower().replace("-", "_"),
            "type": "postgres",  # logical decoding when the server allows it, else triggers
            "resource": code,
            "database": database,
            "table": code.lower().replace("-", "_"),  # the department's own table holding the resource
        }
        for code in owned[1:]
    ]
    doc: dict[str, Any] = {
        "department": dept,
        "catalog": "../config",  # CONNECTOR_MOUNT/.. is where CONFIG_MOUNT is
        "health": {"host": "0.0.0.0", "port": HEALTH_PORT},  # noqa: S104 - the kubelet probes the pod's address
        "create_topics": False,  # xhub apply creates them, with the cluster's replication
        "sources": sources,
    }
    if subscribed:
        doc["sinks"] = [
            {
                "name": "inbox",
                "hub": hub,
                "type": "sql",
                "dsn": database,
                "subscriptions": subscribed,
                "tables": {sid: sid.replace("-", "_") for sid in subscribed},
            }
        ]
    return doc


def department_manifests(
    cfg: ConfigDir, dept: str, hub: str, files: ConfigFiles, place: Placement
) -> list[Manifest]:
    """The config copy, the connector config and the application's Deployment with its sidecar."""
    connector = connector_config(cfg, dept, hub)
    app_name = f"{dept}-app"
    selector = {"app.kubernetes.io/name": app_name}
    sidecar = {
        "name": "xhub-sidecar",
        "image": place.image,
        "restartPolicy": "Always",  # a native sidecar: up before the application, down after it
        "args": ["connector", "run", "--config", f"{CONNECTOR_MOUNT}/connector.yaml"],
        "env": [
            {"name": "XHUB_SECRETS_DIR", "value": SECRETS_MOUNT},  # the push token: file xhub_push_token
            {
                "name": "PGPASSWORD",
                "valueFrom": {"secretKeyRef": {"name": f"{dept}-sidecar", "key": "pgpassword"}},
            },
        ],
        "ports": [{"name": "xhub-health", "containerPort": HEALTH_PORT}],
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "xhub-health"},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "xhub-health"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": restricted_security(),
        "volumeMounts": [
            {"name": "xhub-config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "xhub-connector", "mountPath": CONNECTOR_MOUNT, "readOnly": True},
            {"name": "xhub-secrets", "mountPath": SECRETS_MOUNT, "readOnly": True},
            {"name": "xhub-tmp", "mountPath": "/tmp"},  # noqa: S108 - the container's own tmpfs
        ],
    }
    application = {
        "name": "app",
        "image": f"registry.example.gov.cn/{dept}/app:1.0",  # the department's own application
        "env": [
            {"name": "XHUB_PUSH_URL", "value": f"http://127.0.0.1:{PUSH_PORT}/records"},
            {
                "name": "XHUB_PUSH_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": f"{dept}-sidecar", "key": "xhub_push_token"}},
            },
        ],
    }
    return [
        config_map("xhub-config", files, place, dept),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(f"{dept}-sidecar", place, "sidecar", dept),
            "data": {"connector.yaml": dump_yaml(connector)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": app_name, "namespace": place.namespace, "labels": selector},
            "spec": {
                "replicas": 1,  # one sidecar per department: a second copy would be fenced (README)
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector, "annotations": {"xhub/config-sha256": files.digest}},
                    "spec": {
                        "terminationGracePeriodSeconds": 75,  # the sidecar's shutdown_timeout_s is 60
                        "initContainers": [sidecar],
                        "containers": [application],
                        "volumes": [
                            config_volume("xhub-config", files) | {"name": "xhub-config"},
                            {"name": "xhub-connector", "configMap": {"name": f"{dept}-sidecar"}},
                            {
                                "name": "xhub-secrets",
                                "secret": {
                                    "secretName": f"{dept}-sidecar",
                                    "items": [{"key": "xhub_push_token", "path": "xhub_push_token"}],
                                    "defaultMode": 0o400,
                                },
                            },
                            {"name": "xhub-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                        ],
                    },
                },
            },
        },
    ]
