"""Partition numbers of the topics the monitor watches, remembered between lag refreshes.

Describing every watched topic on every refresh costs a metadata request as large as the catalog: 10,000
subscriptions are 10,000 delivery topic names, every few seconds, whether or not anything moves. Here a
topic is described the first time it is asked for (all new names in one request), and after that only
when its entry is older than ``max_age`` seconds, at most ``batch`` topics per refresh, the oldest first. A
refresh therefore describes a bounded number of names whatever the catalog size, and a topic created or
grown later (``xhub apply``, more partitions) is seen within about ``max_age`` seconds (or at once after
:meth:`TopicPartitions.forget`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

Describe = Callable[[Sequence[str]], Mapping[str, tuple[int, ...] | None]]
"""Describes topics: name -> sorted partition numbers, None when the topic does not exist. A name left
out of the answer was not settled (a transient error): it is asked again at the next refresh."""


class TopicPartitions:
    """Partitions per topic name, described lazily and re-checked in bounded slices. Not thread-safe.

    Args:
        describe: asks Kafka (see :data:`Describe`).
        max_age: seconds after which a known topic (existing or missing) is described again.
        batch: most topics described again per :meth:`get` (new names are always described at once).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        describe: Describe,
        *,
        max_age: float = 60.0,
        batch: int = 250,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.describe = describe
        self.max_age = max_age
        self.batch = batch
        self.clock = clock
        self._partitions: dict[str, tuple[int, ...] | None] = {}
        self._checked: dict[str, float] = {}
        self._queue: deque[tuple[float, str]] = deque()  # (checked at, name), oldest first

    def get(self, names: Collection[str]) -> Mapping[str, tuple[int, ...] | None]:
        """Partitions of each of ``names`` (None: the topic does not exist), describing what is due.

        The answer is a read-only view: look names up with ``.get``; names it could not settle are absent.
        """
        wanted = names if isinstance(names, (set, frozenset)) else set(names)
        now = self.clock()
        due = [n for n in wanted if n not in self._checked]
        horizon = now - self.max_age
        rechecks = 0
        queue = self._queue
        while queue and rechecks < self.batch and queue[0][0] <= horizon:
            checked, name = queue.popleft()
            if self._checked.get(name) != checked:
                continue  # described again since: a newer entry is further back in the queue
            if name not in wanted:  # nobody watches it any more
                del self._checked[name]
                self._partitions.pop(name, None)
                continue
            due.append(name)
            rechecks += 1
        if due:
            self._store(sorted(set(due)), now)
        return self._partitions

    def forget(self, names: Iterable[str] | None = None) -> None:
        """Describe ``names`` (None: every topic) again at the next :meth:`get`."""
        for name in list(self._checked) if names is None else names:
            self._checked.pop(name, None)
            self._partitions.pop(name, None)

    def forget_missing(self) -> None:
        """Describe the topics found missing again at the next :meth:`get` (after ``xhub apply``)."""
        self.forget([name for name, parts in self._partitions.items() if parts is None])

    def _store(self, names: list[str], now: float) -> None:
        answer = self.describe(names)
        for name in names:
            if name not in answer:
                self._checked.pop(name, None)  # unsettled: ask again next time
                continue
            self._partitions[name] = answer[name]
            self._checked[name] = now
            self._queue.append((now, name))
