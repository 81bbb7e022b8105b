"""The department database as every connector sees it: one connection-string grammar, one redaction,
one identifier check, and a dialect module per engine (``sqlite``, ``postgres``).

Sources add their change-log reading and DDL on top (``connectors.sources.changelog``); the SQL sink
adds its type mapping and apply statements (``connectors.sinks.sql_connection``). Dialect modules import
``dialect`` (the base); nothing here imports a dialect module, so psycopg is imported only by whoever
opens a PostgreSQL database.
"""

from __future__ import annotations

from connectors.db.address import DatabaseAddress, DialectName, parse_dsn, redact
from connectors.db.dialect import Dialect
from connectors.db.identifiers import (
    IDENTIFIER,
    check_identifier,
    is_identifier,
    quote_identifier,
    quote_name,
)

__all__ = [
    "IDENTIFIER",
    "DatabaseAddress",
    "Dialect",
    "DialectName",
    "check_identifier",
    "is_identifier",
    "parse_dsn",
    "quote_identifier",
    "quote_name",
    "redact",
]
