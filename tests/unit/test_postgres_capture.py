"""``type: postgres``: the config it turns into for each capture, without a server where none is asked."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from connectors.errors import ConfigError
from connectors.sources import (
    PgLogicalSourceConfig,
    PostgresSourceConfig,
    SourceConfig,
    SqlTriggerSourceConfig,
    choose_capture,
)

NOWHERE = "postgresql://xhub@127.0.0.1:1/none"  # never connected to: the capture is given


def _config(**overrides: object) -> PostgresSourceConfig:
    body = {
        "name": "court-db",
        "type": "postgres",
        "resource": "PD-CRD-0001",
        "database": NOWHERE,
        "table": "debtors",
        "columns": {"case_no": "case_number"},
        "batch_size": 50,
        "slot": "court_slot",
        "changelog_retention_hours": 6,
        **overrides,
    }
    config = TypeAdapter(SourceConfig).validate_python(body)
    assert isinstance(config, PostgresSourceConfig)
    return config


def test_capture_logical_keeps_the_shared_and_the_logical_settings() -> None:
    choice = choose_capture(_config(capture="logical"))
    assert isinstance(choice.config, PgLogicalSourceConfig)
    assert not isinstance(choice.config, PostgresSourceConfig)
    assert choice.config.type == "pg_logical"
    assert (choice.config.name, choice.config.table, choice.config.batch_size) == ("court-db", "debtors", 50)
    assert choice.config.columns == {"case_no": "case_number"}
    assert choice.config.slot_name == "court_slot"
    assert choice.config.database.get_secret_value() == NOWHERE
    assert choice.reason == "capture: logical in the config"


def test_capture_triggers_keeps_the_change_log_settings() -> None:
    choice = choose_capture(_config(capture="triggers", changelog_table="dept_log"))
    assert isinstance(choice.config, SqlTriggerSourceConfig)
    assert (choice.config.changelog_table, choice.config.changelog_retention_hours) == ("dept_log", 6)
    assert choice.config.columns == {"case_no": "case_number"}


def test_auto_on_sqlite_is_a_config_error_naming_the_source() -> None:
    with pytest.raises(ConfigError, match='source "court-db": type: postgres needs a postgresql://'):
        choose_capture(_config(database="sqlite:///court.db"))


def test_a_bad_change_log_name_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="identifier"):
        _config(changelog_table="log; drop table x")
