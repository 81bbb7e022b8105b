"""The shared connector suite (connectors.testing) over every source, against real Kafka and databases."""

from __future__ import annotations

from connectors.testing import (
    HttpPushHarness,
    OutboxHarness,
    PgLogicalHarness,
    PostgresOutboxHarness,
    PostgresTriggerHarness,
    SqlTriggerHarness,
    source_test_class,
)

TestSqliteTrigger = source_test_class(SqlTriggerHarness, "TestSqliteTrigger")
TestPostgresTrigger = source_test_class(PostgresTriggerHarness, "TestPostgresTrigger")
TestSqliteOutbox = source_test_class(OutboxHarness, "TestSqliteOutbox")
TestPostgresOutbox = source_test_class(PostgresOutboxHarness, "TestPostgresOutbox")
TestHttpPush = source_test_class(HttpPushHarness, "TestHttpPush")
TestPgLogical = source_test_class(PgLogicalHarness, "TestPgLogical")
