"""connectors.db: one connection-string grammar, one redaction and one identifier check for all connectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.db import check_identifier, parse_dsn, quote_identifier, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sqlite:///rel/x.db", "rel/x.db"),
        ("sqlite:rel/x.db", "rel/x.db"),
        ("rel/x.db", "rel/x.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("/abs/x.db", "/abs/x.db"),
    ],
)
def test_sqlite_paths_are_relative_to_the_base_dir(tmp_path: Path, text: str, expected: str) -> None:
    address = parse_dsn(text, base_dir=tmp_path)
    assert address.dialect == "sqlite"
    want = Path(expected) if expected.startswith("/") else (tmp_path / expected).resolve()
    assert address.path == want
    assert parse_dsn(address.dsn).path == want  # the canonical form reads back the same


@pytest.mark.parametrize(
    "text", ["postgresql://u:pw@h/db", "postgres://u@h/db", "host=h dbname=db password=pw"]
)
def test_postgres_dsns_are_kept_as_written_and_shown_without_password(text: str) -> None:
    address = parse_dsn(text, base_dir=Path("/nowhere"))
    assert address.dialect == "postgresql"
    assert address.target == text
    assert "pw" not in address.display


@pytest.mark.parametrize("text", ["mysql://u:pw@h/db", "", "sqlite:///"])
def test_other_strings_are_refused_without_their_password(text: str) -> None:
    with pytest.raises(ValueError, match="neither a postgresql:// DSN nor a SQLite path") as caught:
        parse_dsn(text)
    assert "pw" not in str(caught.value)


def test_redact_hides_url_and_keyword_passwords() -> None:
    assert redact("postgresql://app:s3cret@db/x") == "postgresql://app:***@db/x"
    assert redact("host=db password=s3cret dbname=x") == "host=db password=*** dbname=x"


def test_one_identifier_check() -> None:
    assert check_identifier("schema.table_1") == "schema.table_1"
    assert quote_identifier("s.t") == '"s"."t"'
    for bad in ("1t", "a.b.c", "t; drop table x", "x" * 64, ""):
        with pytest.raises(ValueError, match="plain SQL identifier"):
            check_identifier(bad, "table")
