"""Errors of the department sidecar, grouped by what the caller should do (see ``hub.core.errors``).

- ``SourceUnavailable`` / ``PublishFailed``: transient (database or broker down); the runtime backs off and
  resumes from the last committed position, so nothing is lost or repeated.
- ``Fenced``: another sidecar took over this source's transactional id; this one must stop.
- ``InstallError``: ``xhub connector install`` could not prepare the department database.
- ``MissingDependency``: an optional dependency (``psycopg``) is not installed; the message names the
  ``pip install exchange-hub[...]`` extra (see ``connectors.db.postgres.import_psycopg``). Sources and
  sinks share it.
"""

from __future__ import annotations

from hub.core.errors import ConfigError, FatalError, HubError, InvalidRecord, RetriableError


class ConnectorError(HubError):
    """Root of the errors raised on purpose by the sidecar (besides the shared hub.core.errors classes)."""


class SourceUnavailable(RetriableError):  # noqa: N818 - named for what the caller sees
    """The source database (or the local HTTP port) cannot be used right now; retried with backoff."""


class PublishFailed(RetriableError):  # noqa: N818 - named for what the caller sees
    """A Kafka transaction of events and position failed; nothing of it is visible to read_committed."""


class Fenced(FatalError):  # noqa: N818 - the Kafka term
    """A newer sidecar runs the same source (same transactional id): this instance must stop."""


class InstallError(FatalError):
    """The department database could not be prepared (change-log table, triggers, outbox)."""


class MissingDependency(FatalError):  # noqa: N818 - named for what the operator must add
    """An optional dependency is needed by the config but not installed; the message names the extra."""


__all__ = [
    "ConfigError",
    "ConnectorError",
    "Fenced",
    "InstallError",
    "InvalidRecord",
    "MissingDependency",
    "PublishFailed",
    "SourceUnavailable",
]
