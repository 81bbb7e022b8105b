"""A throwaway config directory (catalog) and connector config files for tests of sources and sinks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from connectors.testing.records import KEY_FIELD, RESOURCE, SCHEMA


def write_catalog(
    root: Path, dept: str, *, bootstrap: str, registry_url: str, subscriber: str | None = None
) -> Path:
    """Write a config directory where ``dept`` owns the test resource ``PD-SOC-0001``; return it.

    With ``subscriber``, that department exists too and subscribes (at hub ``testhub``) to the resource's
    id_number, name and score, as subscription ``<subscriber>-enrolees``.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "departments").mkdir(exist_ok=True)
    (root / "catalog").mkdir(exist_ok=True)
    (root / "schemas").mkdir(exist_ok=True)
    (root / "schemas" / "enrolee.avsc").write_text(json.dumps(SCHEMA, ensure_ascii=False), encoding="utf-8")
    hubs = {
        "kafka": {"bootstrap_servers": bootstrap},
        "registry": {"url": registry_url},
        "hubs": [{"name": "testhub"}],
    }
    (root / "hubs.yaml").write_text(yaml.safe_dump(hubs), encoding="utf-8")
    departments = [{"id": dept, "name": f"test department {dept}", "systems": ["test"]}]
    if subscriber:
        departments.append({"id": subscriber, "name": f"test subscriber {subscriber}", "systems": []})
        (root / "subscriptions").mkdir(exist_ok=True)
        subscription = {
            "id": f"{subscriber}-enrolees",
            "subscriber": subscriber,
            "resource": RESOURCE,
            "hub": "testhub",
            "fields": ["id_number", "name", "score"],
            "purpose": "connector tests",
        }
        (root / "subscriptions" / "test.yaml").write_text(
            yaml.safe_dump({"subscriptions": [subscription]}), encoding="utf-8"
        )
    depts = {"departments": departments}
    (root / "departments" / f"{dept}.yaml").write_text(
        yaml.safe_dump(depts, allow_unicode=True), encoding="utf-8"
    )
    catalog = {
        "resources": [
            {
                "code": RESOURCE,
                "name": "参保人员 (test enrolees)",
                "owner": dept,
                "schema": "schemas/enrolee.avsc",
                "key": KEY_FIELD,
                "key_format": "citizen_id",
                "share": "unconditional",
                "fields": {f["name"]: "internal" for f in SCHEMA["fields"]},
                "checks": {"employer_code": "credit_code"},
            }
        ]
    }
    (root / "catalog" / "test.yaml").write_text(yaml.safe_dump(catalog, allow_unicode=True), encoding="utf-8")
    return root


def write_connector_config(
    path: Path,
    *,
    dept: str,
    catalog: Path,
    bootstrap: str,
    registry_url: str,
    sources: list[dict[str, Any]],
    sinks: list[dict[str, Any]] | None = None,
    health_port: int = 0,
) -> Path:
    """Write a connector config file; return its path."""
    config = {
        "department": dept,
        "catalog": str(catalog),
        "registry_url": registry_url,
        "kafka": {"bootstrap_servers": bootstrap},
        "health": {"host": "127.0.0.1", "port": health_port},
        "topic_partitions": 3,
        "sources": sources,
        "sinks": sinks or [],
        "shutdown_timeout_s": 30,
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def installed_sidecar(
    tmp_path: Path, *, bootstrap: str, registry_url: str, source: dict[str, Any]
) -> tuple[str, Path]:
    """A fresh department (unique id) with its catalog, one source and the database prepared by
    ``xhub connector install``; returns (department id, connector config path)."""
    import uuid

    from connectors.cli import install

    dept = f"t{uuid.uuid4().hex[:10]}"
    catalog = write_catalog(tmp_path / "config", dept, bootstrap=bootstrap, registry_url=registry_url)
    config = write_connector_config(
        tmp_path / "connector.yaml",
        dept=dept,
        catalog=catalog,
        bootstrap=bootstrap,
        registry_url=registry_url,
        sources=[source],
    )
    if install(config) != 0:
        raise AssertionError(f"connector install failed for {config}")
    return dept, config
