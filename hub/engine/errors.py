"""Errors of the hub engine."""

from __future__ import annotations

from hub.core.errors import FatalError


class WorkerFencedError(FatalError):
    """Another worker took over this worker's transactional id."""
