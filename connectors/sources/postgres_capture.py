"""``type: postgres``: capture a PostgreSQL table by logical decoding when the server allows it, else by
triggers.

A department writes one source and the sidecar picks the capture that costs its database least
(README, "Capturing a department database"). The choice must not flip between two runs of the same
source (the two keep different positions), so it follows what ``xhub connector install`` made:

1. ``capture: logical`` or ``capture: triggers`` decide outright;
2. with ``capture: auto`` (the default), a replication slot of the source on the server means logical
   decoding, the capture trigger on the table means triggers;
3. with neither installed yet, logical decoding when the server allows it (``wal_level = logical``, slots
   and WAL senders, a role with REPLICATION), triggers otherwise, with the reason in the install output
   and the sidecar's log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from connectors.db import check_identifier, parse_dsn
from connectors.db.postgres import import_psycopg
from connectors.errors import ConfigError, InstallError, SourceUnavailable
from connectors.sources.pg_logical.server import check_server, server_settings, slot_state
from connectors.sources.pg_logical.source import PgLogicalSourceConfig
from connectors.sources.sql_trigger import SqlTriggerSourceConfig

CAPTURE_TRIGGER = "xhub_capture"  # the trigger name connectors.sources.ddl gives a PostgreSQL table


class PostgresSourceConfig(PgLogicalSourceConfig):
    """A PostgreSQL table, captured the cheapest way the server allows (see the module docstring)."""

    type: Literal["postgres"] = "postgres"  # type: ignore[assignment]
    capture: Literal["auto", "logical", "triggers"] = Field(
        default="auto", description="auto: logical decoding when the server allows it, else triggers"
    )
    # used when the capture is by triggers (the fields of type: sql_trigger)
    changelog_table: str = "xhub_changelog"
    changelog_retention_hours: float | None = Field(
        default=24.0,
        ge=0,
        description="triggers: delete published change-log rows older than this (never the last per key)",
    )

    @field_validator("changelog_table")
    @classmethod
    def _changelog_identifier(cls, value: str) -> str:
        return check_identifier(value, "identifier")


@dataclass(frozen=True, slots=True)
class CaptureChoice:
    """The config of the capture chosen for a ``type: postgres`` source, and why it was chosen."""

    config: PgLogicalSourceConfig | SqlTriggerSourceConfig
    reason: str


def _fields(config: PostgresSourceConfig, target: type[Any]) -> dict[str, Any]:
    shared = set(target.model_fields) - {"type"}
    return {k: v for k, v in config.model_dump().items() if k in shared}


def as_logical(config: PostgresSourceConfig) -> PgLogicalSourceConfig:
    return PgLogicalSourceConfig(**_fields(config, PgLogicalSourceConfig))


def as_triggers(config: PostgresSourceConfig) -> SqlTriggerSourceConfig:
    return SqlTriggerSourceConfig(**_fields(config, SqlTriggerSourceConfig))


def choose_capture(config: PostgresSourceConfig, *, base_dir: Path | None = None) -> CaptureChoice:
    """The capture of ``config`` (see the module docstring); asks the server with ``capture: auto``.

    Raises:
        ConfigError: the database is not PostgreSQL.
        SourceUnavailable: ``capture: auto`` and the server cannot be reached (nothing to decide on).
    """
    if config.capture == "logical":
        return CaptureChoice(as_logical(config), "capture: logical in the config")
    if config.capture == "triggers":
        return CaptureChoice(as_triggers(config), "capture: triggers in the config")
    what = f'source "{config.name}"'
    try:
        address = parse_dsn(config.database.get_secret_value(), base_dir=base_dir)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from exc
    if address.dialect != "postgresql":
        raise ConfigError(f"{what}: type: postgres needs a postgresql:// database, not {address.display}")
    psycopg = import_psycopg(what)
    try:
        conn = psycopg.connect(address.target, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise SourceUnavailable(
            f"{what}: cannot choose between logical decoding and triggers: {address.display}: {exc}".strip()
        ) from exc
    try:
        return _choose(conn, config, address.display)
    finally:
        conn.close()


def _choose(conn: Any, config: PostgresSourceConfig, where: str) -> CaptureChoice:
    logical = as_logical(config)
    if slot_state(conn, logical.slot_name) is not None:
        return CaptureChoice(logical, f"replication slot {logical.slot_name} is installed")
    row = conn.execute(
        "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s",
        (config.table, CAPTURE_TRIGGER),
    ).fetchone()
    if row is not None:
        return CaptureChoice(as_triggers(config), f"capture trigger {CAPTURE_TRIGGER} is installed")
    try:
        check_server(server_settings(conn), where)
    except InstallError as exc:
        return CaptureChoice(as_triggers(config), f"logical decoding not allowed: {exc}")
    return CaptureChoice(logical, "the server allows logical decoding")
