"""A subscriber's table at the end of the federation's path: an SQL sink (SQLite) of its sidecar, with
a receipt log (one row per delivery applied, written in the same database transaction), so that exactly
once can be checked by key and seq."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.testing.catalog import write_connector_config
from hub.core.kafka_settings import KafkaSettings


@dataclass
class SubscriberTable:
    """A subscriber's sidecar config with one SQL sink (SQLite) on its deliveries from ``hub``: the
    table (per key the newest change) and its receipt log."""

    connector: Path
    db: Path

    TABLE = "debtors"
    RECEIPTS = "receipts"

    @classmethod
    def of(
        cls, workdir: Path, *, dept: str, catalog: Path, kafka: KafkaSettings, registry_url: str, hub: str
    ) -> SubscriberTable:
        db = workdir / f"{dept}.db"
        sink = {
            "name": "table",
            "hub": hub,
            "type": "sql",
            "dsn": f"sqlite:///{db}",
            "table": cls.TABLE,
            "applied_log_table": cls.RECEIPTS,
        }
        connector = write_connector_config(
            workdir / f"{dept}.yaml",
            dept=dept,
            catalog=catalog,
            bootstrap=kafka.bootstrap_servers,
            registry_url=registry_url,
            sources=[],
            sinks=[sink],
        )
        return cls(connector, db)

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.db.exists():
            return []
        with closing(sqlite3.connect(self.db, timeout=30)) as conn:
            try:
                return conn.execute(sql).fetchall()
            except sqlite3.OperationalError:  # the sink has not created its tables yet
                return []

    # The table names are this class's constants, never input.
    def receipts(self) -> list[tuple[str, int]]:
        """(key, seq) of every delivery applied."""
        sql = f'SELECT "key", "seq" FROM {self.RECEIPTS}'  # noqa: S608 - our table name
        return [(k, int(s)) for k, s in self._query(sql)]

    def applied_at_ms(self) -> dict[tuple[str, int], float]:
        """(key, seq) -> when its delivery was applied (epoch ms), from the receipt log."""
        out: dict[tuple[str, int], float] = {}
        sql = f'SELECT "key", "seq", "applied_at" FROM {self.RECEIPTS}'  # noqa: S608 - our table name
        for key, seq, at in self._query(sql):
            stamp = datetime.fromisoformat(str(at))
            out[(key, int(seq))] = (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp() * 1000
        return out

    def rows(self) -> dict[str, int]:
        """The table: key -> seq of the change it holds."""
        sql = f"SELECT xhub_key, _xhub_seq FROM {self.TABLE}"  # noqa: S608 - our table name
        return {k: int(s) for k, s in self._query(sql)}

    def records(self) -> list[dict[str, Any]]:
        """The table's rows, every column."""
        if not self.db.exists():
            return []
        with closing(sqlite3.connect(self.db, timeout=30)) as conn:
            conn.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in conn.execute(f"SELECT * FROM {self.TABLE}")]  # noqa: S608 - our name
            except sqlite3.OperationalError:
                return []
