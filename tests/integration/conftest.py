"""Fixtures shared by the integration tests of this folder (the session-wide ones are in tests/fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A sink database DSN: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/dept.db"
    value: str = request.getfixturevalue("pg_database")
    return value
