"""SQL identifiers the connectors put in statements: one check, one quoting, for both dialects.

Table and column names come from config files and delivered schemas; they are never passed as
parameters, so they must be plain identifiers (letters, digits, ``_``; at most 63 characters, the
PostgreSQL limit; not starting with a digit), optionally schema-qualified, and are always double-quoted.
"""

from __future__ import annotations

import re

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
"""One plain identifier part (no schema)."""


def is_identifier(name: str) -> bool:
    """Whether ``name`` is one plain identifier part (no schema qualification)."""
    return IDENTIFIER.match(name) is not None


def check_identifier(value: str, what: str = "SQL identifier") -> str:
    """Accept a plain SQL identifier, optionally schema-qualified (``schema.table``).

    Returns:
        ``value`` unchanged (usable as a pydantic field validator).

    Raises:
        ValueError: naming ``what`` and the rule.
    """
    parts = value.split(".")
    if len(parts) > 2 or not all(is_identifier(p) for p in parts):
        raise ValueError(
            f'{what} "{value}" must be a plain SQL identifier (letters, digits, "_"; at most 63 '
            "characters, not starting with a digit), optionally schema.table"
        )
    return value


def quote_name(name: str) -> str:
    """Double-quote a (possibly schema-qualified) name the caller built or checked already."""
    return ".".join(f'"{part}"' for part in name.split("."))


def quote_identifier(name: str) -> str:
    """Check ``name`` with ``check_identifier`` and quote it.

    Raises:
        ValueError: ``name`` is not a plain identifier.
    """
    return quote_name(check_identifier(name))
