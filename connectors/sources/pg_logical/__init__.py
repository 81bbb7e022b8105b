"""PostgreSQL logical-decoding capture (``type: pg_logical``): the WAL through a replication slot.

``source`` holds the source and its config, ``pgoutput`` the decoder of the built-in plugin's messages,
``server`` the checks, publication, slots and the WAL-held-back tracker.
"""

from __future__ import annotations

from connectors.sources.pg_logical.source import PgLogicalSource, PgLogicalSourceConfig

__all__ = ["PgLogicalSource", "PgLogicalSourceConfig"]
