"""Errors of the monitor (lag, status page, metrics, sharing report)."""

from __future__ import annotations

from hub.core.errors import HubError, RetriableError


class MonitorError(HubError):
    """The monitor cannot answer (a bad option, a config that names no subscription)."""


class LagUnavailable(RetriableError):  # noqa: N818 - named for what the operator sees: no lag right now
    """Kafka did not answer the offsets and group requests the lag is computed from; try again."""
