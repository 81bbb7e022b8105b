"""Exponential backoff with equal jitter, interruptible by a stop event (no crash loop, no busy loop)."""

from __future__ import annotations

import random
import threading


class Backoff:
    """Delays that double from ``initial_s`` up to ``max_s``, each drawn between half its cap and the cap.

    ``reset()`` after a success; ``wait(stop, hint)`` sleeps the next delay (at least ``hint``, the
    error's ``retry_after``) and returns False early when ``stop`` is set.
    """

    def __init__(
        self, initial_s: float = 0.5, max_s: float = 30.0, *, rng: random.Random | None = None
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self, hint: float = 0.0) -> float:
        cap = min(self.max_s, self.initial_s * (2**self.attempt))
        self.attempt += 1
        # Equal jitter (half the cap plus a random half) spreads reconnecting sidecars apart while keeping
        # a floor under the delay; the hint keeps at least what the error asked.
        return min(self.max_s, max(hint, self._rng.uniform(cap / 2, cap)))

    def reset(self) -> None:
        self.attempt = 0

    def wait(self, stop: threading.Event, hint: float = 0.0) -> bool:
        """Sleep the next delay; False if ``stop`` was set meanwhile."""
        return not stop.wait(self.next_delay(hint))
