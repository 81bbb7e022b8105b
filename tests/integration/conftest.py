"""Fixtures shared by the integration tests of this folder (the session-wide ones are in tests/fixtures)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.testing import PgLogicalHarness


@pytest.fixture(params=["sqlite", "postgres"])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A sink database DSN: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/dept.db"
    value: str = request.getfixturevalue("pg_database")
    return value


@pytest.fixture
def pg_logical_harness(tmp_path: Path, pg_database: str) -> Iterator[PgLogicalHarness]:
    """A fresh PostgreSQL database with the connector suite's table, for logical decoding."""
    h = PgLogicalHarness(tmp_path, pg_dsn=pg_database)
    h.prepare()
    try:
        yield h
    finally:
        h.close()  # drops the slot, so that the database can be dropped


@pytest.fixture
def role_without_replication(pg_logical_harness: PgLogicalHarness) -> Iterator[str]:
    """A login role of the harness's database without REPLICATION that may use its table and create in
    schema public (a change-log table, a trigger function); dropped with what it made."""
    import psycopg

    dsn = str(pg_logical_harness.pg_dsn)
    role = f"r{os.getpid()}_{int(time.time() * 1000) % 1_000_000}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN NOREPLICATION')
        conn.execute(f'GRANT ALL ON enrolee TO "{role}"')
        conn.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"')
    try:
        yield role
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}" CASCADE')  # its trigger function, and the trigger
            conn.execute(f'DROP ROLE "{role}"')
