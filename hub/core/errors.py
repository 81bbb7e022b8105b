"""The exception tree of exchange-hub, grouped by what the caller should do.

- ``ConfigError``: the operator or integrator must fix a file; never retried.
- ``FatalError``: the process cannot go on (broker refused our transactional id, schema conflict).
- ``RetriableError``: try again later (broker or database down); ``retry_after`` says when.
- ``InvalidRecord``: one record is bad; it goes to a dead-letter topic and the stream goes on.

Every package raises these (or subclasses of them), always ``from`` the underlying exception, with a
message that names the file, key, field, topic or Kafka error code involved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class HubError(Exception):
    """Root of every error raised on purpose by exchange-hub and its connectors."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem found in a config file: where it is and what is wrong."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        at = f" at {self.path}" if self.path else ""
        return f"{where}{at}: {self.message}"


class ConfigError(HubError):
    """Configuration is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: str | Iterable[ConfigProblem | str]) -> None:
        items: list[ConfigProblem | str] = [problems] if isinstance(problems, str) else list(problems)
        self.problems: Sequence[ConfigProblem | str] = items
        if len(items) == 1:
            text = str(items[0])
        else:
            text = f"{len(items)} config problems:\n" + "\n".join(f"  - {p}" for p in items)
        super().__init__(text)


class FatalError(HubError):
    """The process cannot continue; restarting without a fix will fail the same way."""


class RetriableError(HubError):
    """A transient failure (broker, database, network). ``retry_after`` is a hint in seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidRecord(HubError):  # noqa: N818 - the name DESIGN.md fixes; it is a record, not a crash
    """One record cannot be accepted. It is dead-lettered with ``reason``; the stream goes on.

    Args:
        reason: short machine-readable cause, e.g. ``"bad_check_digit"``.
        detail: human-readable explanation naming the field. Never contains the personal value.
        field: the offending field, when one is to blame.
        original: the original bytes (or decoded record) as received, for the dead-letter topic.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        field: str | None = None,
        original: bytes | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field
        self.original = original
