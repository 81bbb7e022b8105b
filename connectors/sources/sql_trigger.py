"""SQL trigger capture (the default source): triggers log every change of a table; we publish the log.

``xhub connector install`` creates the change-log table and AFTER INSERT/UPDATE/DELETE triggers on the
captured table (``connectors.sources.ddl``). The application keeps writing its table as before; each of
its transactions logs its changes in the same transaction, so a change is logged if and only if it
commits. The source reads the log in commit-safe order (``connectors.sources.changelog``) and publishes:

    c insert, u update, d delete (the old key), r snapshot rows (``connectors.sources.snapshot``)

with seq = change-log id. Unlike timestamp or incrementing-id polling it sees deletes and cannot skip a
row whose transaction commits after a later one. Its position on xhub.pos.<dept> is
``{"log": <dialect log position>, "snapshot": null | {"after": <last key read>}}``.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from connectors.db import check_identifier
from connectors.errors import InstallError
from connectors.sources.base import Batch, Captured, Poll, PollingSource, Position, SourceConfigBase
from connectors.sources.changelog import LogSpec, open_change_log
from connectors.sources.ddl import apply_objects, changelog_objects, trigger_objects
from connectors.sources.snapshot import TableSnapshot
from hub.core.envelope import Op, now_ms
from hub.core.log import get_logger

_OPS: dict[str, Op] = {"c": "c", "u": "u", "d": "d"}


class SqlTriggerSourceConfig(SourceConfigBase):
    """Trigger capture of one table of a SQLite or PostgreSQL database."""

    type: Literal["sql_trigger"] = "sql_trigger"
    resource: str = Field(description="catalog code of the records in the table")
    database: SecretStr = Field(
        description="sqlite:///relative.db, sqlite:////absolute.db, a file path, or a postgresql:// DSN"
    )
    table: str = Field(description="the captured table, optionally schema.table")
    key_column: str | None = Field(
        default=None, description="column of the business key; default: the key field"
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="schema field -> table column, where they differ"
    )
    changelog_table: str = "xhub_changelog"
    poll_interval_ms: int = Field(default=200, ge=10, le=60_000)
    snapshot: bool = Field(default=True, description="publish existing rows as op=r on first start")
    changelog_retention_hours: float | None = Field(
        default=24.0,
        ge=0,
        description="delete published change-log rows older than this (never the last per key)",
    )

    @field_validator("table", "changelog_table", "key_column")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value, "identifier")

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        for column in value.values():
            check_identifier(column, "column")
        return value

    def resource_codes(self) -> list[str]:
        return [self.resource]


class SqlTriggerSource(PollingSource):
    """Publishes the changes of one table, captured by triggers into a change-log table."""

    kind = "sql_trigger"
    config: SqlTriggerSourceConfig
    prune_every_s = 600.0

    def __init__(self, config: SqlTriggerSourceConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.poll_interval_s = config.poll_interval_ms / 1000
        self.spec = self.specs[config.resource]
        self.db = open_change_log(
            config.database.get_secret_value(), base_dir=self.base_dir, what=f'source "{config.name}"'
        )
        self.key_column = config.key_column or config.columns.get(self.spec.key_field, self.spec.key_field)
        self.log_spec = LogSpec(
            table=config.changelog_table,
            columns=f"id, op, pk, row_json, {self.db.ms_expr('commit_ts')}",
            where=f"tbl = {self.db.ph}",
            params=(config.table,),
        )
        self._pairs: list[tuple[str, str]] = []
        self._snapshot: TableSnapshot | None = None
        self._last_prune = time.monotonic()
        self._origin_prefix = f"{config.changelog_table}#"
        self.log = get_logger("source", source=config.name, kind=self.kind)

    @property
    def supports_snapshot(self) -> bool:
        return True

    # --- install --------------------------------------------------------------------------------

    def _mapping(self, columns: list[str]) -> list[tuple[str, str]]:
        """(field, column) of every schema field the table has; errors name what is missing."""
        where = f'source "{self.name}": table {self.config.table} in {self.db.display}'
        if not columns:
            raise InstallError(f"{where} does not exist")
        return self.spec.column_pairs(set(columns), self.config.columns, self.key_column, where)

    def install(self) -> list[str]:
        self.db.connect()
        try:
            with self.db.read() as r:
                pairs = self._mapping(self.db.table_columns(r, self.config.table))
            objects = [
                *changelog_objects(self.db, self.config.changelog_table),
                *trigger_objects(
                    self.db, self.config.table, self.key_column, pairs, self.config.changelog_table
                ),
            ]
            return [f"{line} in {self.db.display}" for line in apply_objects(self.db, objects)]
        finally:
            self.db.close()

    # --- reading --------------------------------------------------------------------------------

    def open(self) -> None:
        self.db.connect()
        with self.db.read() as r:
            log_columns = self.db.table_columns(r, self.config.changelog_table)
            table_columns = self.db.table_columns(r, self.config.table)
        if not log_columns:
            raise InstallError(
                f'source "{self.name}": change-log table {self.config.changelog_table} is missing in '
                f"{self.db.display}; run: xhub connector install --config FILE"
            )
        self._pairs = self._mapping(table_columns)
        self._snapshot = TableSnapshot(
            self.db, self.config.table, self.key_column, self._pairs, self.config.changelog_table
        )

    def close(self) -> None:
        self.db.close()

    def poll(self, position: Position | None, limit: int, *, start_snapshot: bool) -> Poll:
        assert self._snapshot is not None, "poll() before open()"
        if position is None:
            log_pos = None if self.config.snapshot else self.db.log_start()
            snapshot: dict[str, Any] | None = {"after": None} if self.config.snapshot else None
        else:
            log_pos = position["log"]
            snapshot = position.get("snapshot")
        if start_snapshot:
            snapshot = {"after": None}
            self.log.info("snapshot_started", table=self.config.table)
        changes: list[Captured] = []
        finished = False
        with self.db.read() as r:
            if log_pos is None:
                # First start: stream from the state this transaction sees, which the first chunk shows.
                log_pos, caught_up = self.db.log_head(r, self.log_spec), True
            else:
                rows, log_pos, caught_up = self.db.log_read(r, self.log_spec, log_pos, limit)
                changes = [self._change(row) for row in rows]
            chunk_rows = []
            if snapshot is not None and caught_up:
                # Changes first, then as many rows as keep the batch within its limit.
                chunk_limit = max(1, limit - len(changes))
                chunk_rows = self._snapshot.chunk(r, snapshot["after"], chunk_limit)
                if len(chunk_rows) < chunk_limit:
                    chunk_rows += self._snapshot.keyless(r, limit)
                    finished = True
        if snapshot is not None and caught_up:
            read_ms = now_ms()
            code = self.spec.code
            origin = f"{self.config.table} snapshot"
            changes.extend(
                Captured(
                    code,
                    "r",
                    row.seq,
                    read_ms,
                    origin,
                    row.row_json.encode("utf-8", "surrogateescape"),
                    row.key or None,
                )
                for row in chunk_rows
            )
            if finished:
                self.log.info("snapshot_finished", table=self.config.table)
                snapshot = None
            else:
                snapshot = {"after": chunk_rows[-1].sort_key}
        new_position = {"log": log_pos, "snapshot": snapshot}
        more = not caught_up or snapshot is not None
        if changes or (position is not None and position.get("snapshot") != snapshot):
            return Poll(Batch(changes, new_position), new_position, more)
        return Poll(None, new_position, more)

    def _change(self, row: tuple[Any, ...]) -> Captured:
        log_id, op_text, pk, row_json, commit_ms = row
        # Our triggers write only c, u and d; anything else is taken as an upsert of the row.
        op: Op = _OPS.get(str(op_text).strip(), "u")
        data = None if row_json is None else str(row_json).encode("utf-8", "surrogateescape")
        key = None if pk is None else str(pk)
        return Captured(
            self.spec.code, op, int(log_id), int(commit_ms), f"{self._origin_prefix}{log_id}", data, key
        )

    # --- housekeeping ---------------------------------------------------------------------------

    def after_commit(self, position: Position) -> None:
        retention = self.config.changelog_retention_hours
        if retention is None or time.monotonic() - self._last_prune < self.prune_every_s:
            return
        self._last_prune = time.monotonic()
        cond, params = self.db.published(self.log_spec, position["log"])
        ph = self.db.ph
        log = self.db.quote(self.config.changelog_table)
        cutoff = now_ms() - int(retention * 3_600_000)
        # Keep the last row of every key: a later snapshot takes its seq from it.
        commit_ms = self.db.ms_expr("commit_ts")
        sql = (
            f"DELETE FROM {log} WHERE tbl = {ph} AND {cond} AND {commit_ms} < {ph} "  # noqa: S608 - identifiers are checked and quoted
            f"AND EXISTS (SELECT 1 FROM {log} n "
            f"WHERE n.tbl = {log}.tbl AND n.pk = {log}.pk AND n.id > {log}.id)"
        )
        with self.db.write() as w:
            deleted = w.execute(sql, (self.config.table, *params, cutoff))
        self.log.info("changelog_pruned", table=self.config.table, rows=deleted)
