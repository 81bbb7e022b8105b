"""Outbox: publish the rows a department application writes to an outbox table in its own transactions.

The application inserts, in the same transaction as its business change, a row

    (id, resource, op, key, payload_json, created_at)        + txid on PostgreSQL (a column default)

with op c/u/d/r, the business key, and the record as JSON (null for d). The source reads the table in
commit-safe order exactly like the trigger change log (``connectors.sources.changelog``), with
seq = outbox id, and publishes each row to the resource's topic. A row of a resource this source does
not publish, or with an op other than c/u/d/r, is dead-lettered, never skipped.

For per-key order the application must write a key's outbox row after locking that key's business row
(as an UPDATE does); then a later change of the key always takes a larger outbox id.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from connectors.db import check_identifier
from connectors.errors import InstallError
from connectors.sources.base import Batch, Captured, Poll, PollingSource, Position, SourceConfigBase
from connectors.sources.changelog import LogSpec, open_change_log
from connectors.sources.ddl import apply_objects, outbox_objects
from hub.core.envelope import now_ms
from hub.core.errors import InvalidRecord
from hub.core.log import get_logger

_OPS = frozenset("cudr")
BAD_OP = "bad_op"
UNKNOWN_RESOURCE = "unknown_resource"


class OutboxSourceConfig(SourceConfigBase):
    """An outbox table written by the department's application."""

    type: Literal["outbox"] = "outbox"
    resources: list[str] = Field(min_length=1, description="catalog codes the outbox carries")
    database: SecretStr = Field(
        description="sqlite:///relative.db, sqlite:////absolute.db, a file path, or postgresql://"
    )
    table: str = Field(default="xhub_outbox", description="the outbox table")
    poll_interval_ms: int = Field(default=200, ge=10, le=60_000)
    retention_hours: float | None = Field(
        default=24.0, ge=0, description="delete published outbox rows older than this; None keeps them"
    )

    @field_validator("table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return check_identifier(value, "table")

    def resource_codes(self) -> list[str]:
        return list(self.resources)


class OutboxSource(PollingSource):
    """Publishes an outbox table in commit order."""

    kind = "outbox"
    config: OutboxSourceConfig
    prune_every_s = 600.0

    def __init__(self, config: OutboxSourceConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.poll_interval_s = config.poll_interval_ms / 1000
        self.db = open_change_log(
            config.database.get_secret_value(), base_dir=self.base_dir, what=f'source "{config.name}"'
        )
        self.log_spec = LogSpec(
            table=config.table,
            columns=f"id, resource, op, key, payload_json, {self.db.ms_expr('created_at')}",
        )
        self._origin_prefix = f"{config.table}#"
        self._last_prune = time.monotonic()
        self.log = get_logger("source", source=config.name, kind=self.kind)

    def install(self) -> list[str]:
        self.db.connect()
        try:
            return [
                f"{line} in {self.db.display}"
                for line in apply_objects(self.db, outbox_objects(self.db, self.config.table))
            ]
        finally:
            self.db.close()

    def open(self) -> None:
        self.db.connect()
        with self.db.read() as r:
            columns = set(self.db.table_columns(r, self.config.table))
        needed = {"id", "resource", "op", "key", "payload_json", "created_at"}
        if self.db.dialect.name == "postgresql":
            needed.add("txid")
        if not needed <= columns:
            missing = ", ".join(sorted(needed - columns))
            raise InstallError(
                f'source "{self.name}": outbox table {self.config.table} in {self.db.display} '
                f"lacks {missing}; run: xhub connector install --config FILE"
            )

    def close(self) -> None:
        self.db.close()

    def poll(self, position: Position | None, limit: int, *, start_snapshot: bool) -> Poll:
        log_pos = self.db.log_start() if position is None else position["log"]
        with self.db.read() as r:
            rows, log_pos, caught_up = self.db.log_read(r, self.log_spec, log_pos, limit)
        new_position = {"log": log_pos}
        if not rows:
            return Poll(None, new_position, not caught_up)
        changes = [self._change(row) for row in rows]
        return Poll(Batch(changes, new_position), new_position, not caught_up)

    def _change(self, row: tuple[Any, ...]) -> Captured:
        out_id, resource, op, key, payload, created_ms = row
        op = str(op or "").strip()
        data = None if payload is None else str(payload).encode("utf-8", "surrogateescape")
        origin = f"{self._origin_prefix}{out_id}"
        created = _millis(created_ms)
        resource = str(resource or "")
        if resource not in self.specs:
            problem = InvalidRecord(
                UNKNOWN_RESOURCE,
                f'outbox row {out_id}: resource "{resource[:64]}" is not one of {", ".join(self.specs)}',
                field="resource",
                original=_original(row),
            )
            return Captured(resource, "u", int(out_id), created, origin, rejected=problem)
        if op not in _OPS:
            problem = InvalidRecord(
                BAD_OP,
                f"outbox row {out_id}: op is not one of c, u, d, r",
                field="op",
                original=_original(row),
            )
            return Captured(resource, "u", int(out_id), created, origin, rejected=problem)
        key_text = None if key is None else str(key)
        return Captured(resource, op, int(out_id), created, origin, data, key_text)  # type: ignore[arg-type]

    def after_commit(self, position: Position) -> None:
        retention = self.config.retention_hours
        if retention is None or time.monotonic() - self._last_prune < self.prune_every_s:
            return
        self._last_prune = time.monotonic()
        cond, params = self.db.published(self.log_spec, position["log"])
        cutoff = now_ms() - int(retention * 3_600_000)
        sql = (
            f"DELETE FROM {self.db.quote(self.config.table)} WHERE {cond} "  # noqa: S608 - identifiers are checked and quoted
            f"AND {self.db.ms_expr('created_at')} < {self.db.ph}"
        )
        with self.db.write() as w:
            deleted = w.execute(sql, (*params, cutoff))
        self.log.info("outbox_pruned", table=self.config.table, rows=deleted)


def _millis(value: Any) -> int:
    """created_at as epoch millis; an application that filled it oddly must not stop the source."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return now_ms()


def _original(row: tuple[Any, ...]) -> bytes:
    """The whole outbox row as JSON, for a dead letter that is not about the payload alone."""
    import json

    out_id, resource, op, key, payload, created_ms = row
    return json.dumps(
        {
            "id": out_id,
            "resource": resource,
            "op": op,
            "key": key,
            "payload_json": payload,
            "created_at": created_ms,
        },
        ensure_ascii=False,
    ).encode("utf-8", "surrogateescape")
