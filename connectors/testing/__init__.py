"""The shared connector test suite (like singer-sdk's ``get_tap_test_class``) and its helpers.

    from connectors.testing import SqlTriggerHarness, source_test_class
    TestSqliteTrigger = source_test_class(SqlTriggerHarness)

Needs pytest and the project's pytest plugin (fixtures ``kafka``, ``pg_database``). Sinks plug in through
``ConnectorHarness`` (see ``connectors.testing.harness``).
"""

from __future__ import annotations

from connectors.testing.harness import (
    ConnectorHarness,
    HttpPushHarness,
    OutboxHarness,
    PgLogicalHarness,
    PostgresOutboxHarness,
    PostgresTriggerHarness,
    SourceHarness,
    SqlTriggerHarness,
)
from connectors.testing.suite import (
    SnapshotSuite,
    SourceSuite,
    SuiteEnv,
    assert_exactly_once,
    source_test_class,
)

__all__ = [
    "ConnectorHarness",
    "HttpPushHarness",
    "OutboxHarness",
    "PgLogicalHarness",
    "PostgresOutboxHarness",
    "PostgresTriggerHarness",
    "SnapshotSuite",
    "SourceHarness",
    "SourceSuite",
    "SqlTriggerHarness",
    "SuiteEnv",
    "assert_exactly_once",
    "source_test_class",
]
