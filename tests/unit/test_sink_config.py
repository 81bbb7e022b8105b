"""Sink configs: the discriminated union, build_sink, and the checks each config makes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.sinks import (
    SINK_CONFIG_ADAPTER,
    JsonlSink,
    JsonlSinkConfig,
    MissingDependency,
    SqlSink,
    SqlSinkConfig,
    WebhookSink,
    WebhookSinkConfig,
    build_sink,
)
from connectors.sinks.sql_connection import open_apply_connection


def test_union_picks_the_model_by_type(tmp_path: Path) -> None:
    sql = SINK_CONFIG_ADAPTER.validate_python(
        {"type": "sql", "dsn": f"sqlite:///{tmp_path}/x.db", "table": "t"}
    )
    web = SINK_CONFIG_ADAPTER.validate_python(
        {"type": "webhook", "url": "https://app.example/x", "bearer_token": "tok-9q7"}
    )
    jsonl = SINK_CONFIG_ADAPTER.validate_python({"type": "jsonl", "path": str(tmp_path / "x.jsonl")})
    assert isinstance(sql, SqlSinkConfig)
    assert isinstance(web, WebhookSinkConfig)
    assert isinstance(jsonl, JsonlSinkConfig)
    assert isinstance(build_sink(sql), SqlSink)
    assert isinstance(build_sink(web), WebhookSink)
    assert isinstance(build_sink(jsonl), JsonlSink)
    assert "tok-9q7" not in repr(web)
    assert "x.db" not in repr(sql)  # a DSN may hold a password: it is a secret as a whole


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"type": "sql", "dsn": "sqlite:///x.db", "tabel": "t"}, "tabel"),
        ({"type": "sql", "dsn": "mysql://x"}, "dsn"),
        ({"type": "sql", "dsn": "sqlite:///x.db", "table": "t; drop table x"}, "table"),
        ({"type": "sql", "dsn": "sqlite:///x.db", "tables": {"s": "1bad"}}, "tables"),
        ({"type": "webhook", "url": "app.example/x"}, "url"),
        ({"type": "webhook", "url": "http://a/x", "max_attempts": 0}, "max_attempts"),
        ({"type": "kafka"}, "type"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(data: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SINK_CONFIG_ADAPTER.validate_python(data)
    assert where in str(caught.value)


def test_postgres_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingDependency, match=r"pip install exchange-hub\[postgres\]"):
        open_apply_connection("postgresql://u@localhost/db")
