"""The connector config file: every problem reported at once, with file, line and path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.cli import main
from connectors.config import load_connector_config
from connectors.sources import HttpPushSourceConfig, OutboxSourceConfig, SqlTriggerSourceConfig
from connectors.testing.catalog import write_catalog, write_connector_config
from connectors.testing.records import RESOURCE
from hub.core.errors import ConfigError, ConfigProblem


def _write(tmp_path: Path, text: str) -> Path:
    write_catalog(
        tmp_path / "config", "psb", bootstrap="127.0.0.1:9092", registry_url="http://127.0.0.1:8081"
    )
    path = tmp_path / "connector.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = f"""\
department: psb
catalog: config
sources:
  - name: hukou
    type: sql_trigger
    resource: {RESOURCE}
    database: dept.db
    table: enrolee
  - name: outbox
    type: outbox
    resources: [{RESOURCE}]
    database: postgresql://app:secret@db.example/hukou
  - name: push
    type: http_push
    resources: [{RESOURCE}]
    port: 8799
    token_secret: push_token
"""


def test_a_good_config_loads_with_defaults_from_the_catalog(tmp_path: Path) -> None:
    loaded = load_connector_config(_write(tmp_path, GOOD))
    assert loaded.department == "psb"
    assert loaded.registry_url == "http://127.0.0.1:8081"  # from hubs.yaml
    assert loaded.kafka.bootstrap_servers == "127.0.0.1:9092"
    kinds = [type(s) for s in loaded.config.sources]
    assert kinds == [SqlTriggerSourceConfig, OutboxSourceConfig, HttpPushSourceConfig]
    assert set(loaded.resources) == {RESOURCE}
    assert loaded.resources[RESOURCE].key_format == "citizen_id"
    assert loaded.resources[RESOURCE].checks == {"employer_code": "credit_code"}
    outbox = loaded.config.sources[1]
    assert isinstance(outbox, OutboxSourceConfig)
    assert "secret" not in repr(outbox), "database DSNs are secrets"


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_connector_config(path)
    return [str(p) for p in info.value.problems]


def test_unknown_keys_and_bad_types_name_file_line_and_path(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        GOOD.replace("    table: enrolee\n", "    table: enrolee\n    tabel: x\n").replace(
            "    port: 8799", "    port: not-a-port"
        ),
    )
    problems = _problems(path)
    assert any(p.endswith('connector.yaml:9 at sources[0].tabel: unknown key "tabel"') for p in problems), (
        problems
    )
    assert any("connector.yaml:17 at sources[2].port" in p for p in problems), problems


def test_catalog_cross_checks_are_reported_together(tmp_path: Path) -> None:
    text = (
        GOOD.replace("department: psb", "department: court")
        .replace("  - name: outbox", "  - name: hukou")
        .replace(f"resources: [{RESOURCE}]\n    database", "resources: [PD-POP-0009]\n    database")
    )
    problems = _problems(_write(tmp_path, text))
    joined = "\n".join(problems)
    assert 'department "court" is not in' in joined
    assert 'source name "hukou" is used twice' in joined
    assert 'resource "PD-POP-0009" is not in the catalog' in joined
    assert f'resource "{RESOURCE}" is owned by "psb"; department "court" cannot publish it' in joined
    assert len(problems) >= 4


def test_bad_identifiers_are_refused(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, GOOD.replace("table: enrolee", 'table: "enrolee; drop table x"')))
    assert any("sources[0].table" in p and "plain SQL identifier" in p for p in problems), problems


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, "department: [psb\n"))
    assert problems[0].startswith(str((tmp_path / "connector.yaml").resolve()) + ":")
    assert "YAML syntax error" in problems[0]


def test_sinks_are_bound_to_subscriptions_and_checked_by_the_sink_models(tmp_path: Path) -> None:
    config: dict[str, Any] = yaml.safe_load(GOOD)
    config["sinks"] = [
        {"name": "lines", "hub": "testhub", "subscriptions": ["psb-x"], "type": "jsonl", "path": "out.jsonl"},
        {"name": "bad", "hub": "nohub", "type": "jsonl", "paht": "x"},
    ]
    problems = _problems(_write(tmp_path, yaml.safe_dump(config)))
    joined = "\n".join(problems)
    assert 'subscription "psb-x" is not in the catalog' in joined
    assert 'hub "nohub" is not in hubs.yaml' in joined
    assert 'sinks[1].paht: unknown key "paht"' in joined


def test_cli_prints_every_problem_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path, GOOD.replace("department: psb", "department: nobody").replace("table: enrolee", "tabel: x")
    )
    assert main(["run", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "error: " in err
    assert "error(s)" in err
    assert main(["install", "--config", str(tmp_path / "missing.yaml")]) == 1


def test_config_problem_format() -> None:
    assert str(ConfigProblem("c.yaml", 3, "sources[0].table", "bad")) == "c.yaml:3 at sources[0].table: bad"


def test_a_source_and_a_sink_open_the_same_file_for_the_same_relative_sqlite_dsn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.sinks.config import build_sink
    from connectors.sources import SqlTriggerSource, build_source

    catalog = write_catalog(
        tmp_path / "config",
        "psb",
        bootstrap="127.0.0.1:9092",
        registry_url="http://127.0.0.1:8081",
        subscriber="tax",
    )
    folder = tmp_path / "connectors"
    (folder / "data").mkdir(parents=True)
    dsn = "sqlite:///data/shared.db"
    owner = write_connector_config(
        folder / "psb.yaml",
        dept="psb",
        catalog=catalog,
        bootstrap="127.0.0.1:9092",
        registry_url="http://127.0.0.1:8081",
        sources=[
            {"name": "hukou", "type": "sql_trigger", "resource": RESOURCE, "database": dsn, "table": "t"}
        ],
    )
    subscriber = write_connector_config(
        folder / "tax.yaml",
        dept="tax",
        catalog=catalog,
        bootstrap="127.0.0.1:9092",
        registry_url="http://127.0.0.1:8081",
        sources=[],
        sinks=[{"name": "db", "hub": "testhub", "type": "sql", "dsn": dsn}],
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # neither may resolve against the working directory

    source_side = load_connector_config(owner)
    sink_side = load_connector_config(subscriber)
    source = build_source(
        source_side.config.sources[0], resources=source_side.resources, base_dir=source_side.base_dir
    )
    assert isinstance(source, SqlTriggerSource)
    sink = build_sink(sink_side.sinks[0].sink)
    sink.open()  # creates the file and its offsets table
    try:
        db = source.db
        db.connect()
        try:
            with db.read() as reader:
                assert db.table_columns(reader, "xhub_offsets"), "the source sees the sink's table"
        finally:
            db.close()
    finally:
        sink.close()
    assert (folder / "data" / "shared.db").is_file()
    assert not (elsewhere / "data").exists()
