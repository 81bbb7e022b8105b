"""deploy/compose/compose.yaml: valid for the Compose Specification, and what it runs is valid for
exchange-hub (commands the CLI takes, connector configs and a config directory its loaders accept).

No container engine runs here, so this is the whole check; the schema is vendored (deploy/compose/README.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.cli import build_parser
from hub.config import load_config
from hub.deploy.configmap import cluster_hubs_yaml

try:
    import jsonschema
except ImportError as exc:  # a missing tool fails, never skips
    raise ImportError(f"{exc}: pip install -c constraints.txt -e '.[test]'") from exc

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy/compose"
DEMO_CONFIG = REPO / "deploy/demo/config"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text(encoding="utf-8"))
    return doc


def test_compose_file_follows_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads((COMPOSE / "compose-spec.json").read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_three_kraft_brokers_of_one_cluster_built_from_the_containerfile(compose: dict[str, Any]) -> None:
    brokers = {name: s for name, s in compose["services"].items() if name.startswith("kafka-")}
    assert set(brokers) == {"kafka-1", "kafka-2", "kafka-3"}
    assert {s["environment"]["KAFKA_NODE_ID"] for s in brokers.values()} == {"1", "2", "3"}
    assert len({s["environment"]["KAFKA_CLUSTER_ID"] for s in brokers.values()}) == 1
    voters = brokers["kafka-1"]["environment"]["KAFKA_QUORUM_VOTERS"]
    assert voters == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    for service in compose["services"].values():
        assert service["build"]["dockerfile"] == "deploy/container/Containerfile"
        assert (COMPOSE / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert brokers["kafka-1"]["build"]["target"] == "broker"


def test_hubs_yaml_is_the_demos_with_the_cluster_addresses() -> None:
    expected = cluster_hubs_yaml(
        (DEMO_CONFIG / "hubs.yaml").read_text(encoding="utf-8"),
        bootstrap_servers="kafka-1:9092,kafka-2:9092,kafka-3:9092",
        registry_url="http://registry:8081",
    )
    assert (COMPOSE / "hubs.yaml").read_text(encoding="utf-8") == expected


def test_commands_and_connector_configs_are_valid(compose: dict[str, Any], tmp_path: Path) -> None:
    from connectors.config import load_connector_config

    # The containers' view: the demo config with compose's hubs.yaml on top, the connectors beside it.
    config = tmp_path / "config"
    shutil.copytree(DEMO_CONFIG, config)
    shutil.copy(COMPOSE / "hubs.yaml", config / "hubs.yaml")
    assert load_config(config).hubs_file.registry.url == "http://registry:8081"
    parser = build_parser()
    departments_with_an_app = set()
    sidecars = set()
    for name, service in compose["services"].items():
        command = service.get("command")
        if name.endswith("-app"):
            assert service["entrypoint"] == ["python3", "-m", "hub.demo.department_app"]
            departments_with_an_app.add(command[0])
            continue
        if command is None:
            continue  # brokers
        parsed = parser.parse_args(command)
        if parsed.command == "connector":
            text = (COMPOSE / "connectors" / Path(parsed.config).name).read_text(encoding="utf-8")
            connector = tmp_path / "connectors" / Path(parsed.config).name
            connector.parent.mkdir(exist_ok=True)
            connector.write_text(text.replace("/etc/xhub/config", str(config)), encoding="utf-8")
            loaded = load_connector_config(connector)
            sidecars.add(loaded.department)
    assert departments_with_an_app == {"court", "amr", "psb", "housing"}
    assert departments_with_an_app <= sidecars
    assert (
        sidecars
        == {s.subscriber for s in load_config(DEMO_CONFIG).subscriptions.values()} | departments_with_an_app
    )


def test_the_stand_in_application_writes_its_departments_table(tmp_path: Path) -> None:
    import sqlite3
    import threading

    from hub.demo.department_app import run

    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    written = run("court", tmp_path, rate=50, seed=1, stop=stop)
    with sqlite3.connect(tmp_path / "court.db") as conn:
        (rows,) = conn.execute("SELECT count(*) FROM dishonest_debtor").fetchone()
    assert written > 0
    assert rows == written
