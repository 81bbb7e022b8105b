"""Errors of the audit package."""

from __future__ import annotations

from hub.core.errors import HubError


class AuditQueryError(HubError):
    """An `xhub audit show` question that cannot be asked as given (e.g. a key without its resource)."""


class CheckpointError(HubError):
    """A checkpoint that cannot be written: the directory's earlier ones do not verify, or a race."""
