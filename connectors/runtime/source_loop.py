"""Runs one source: gives it a publishing context, and retries it with backoff through outages.

``SourceRunner`` is the ``SourceContext`` its source publishes through. ``publish`` validates every change
(``EventBuilder``), then commits events, dead letters and the new position in one Kafka transaction
(``TransactionalPublisher``). If anything fails, the source's ``run`` raises; the runner closes the
producer, waits (exponential backoff with jitter), and runs the source again, which resumes from the
last committed position. A database or broker outage thus costs time, never changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kafka.errors import KafkaError

from connectors.errors import Fenced
from connectors.runtime.events import EventBuilder
from connectors.runtime.metrics import SidecarMetrics, export_wal_held
from connectors.runtime.publisher import OutRecord, TransactionalPublisher
from connectors.runtime.retry import Backoff
from connectors.sources.base import Batch, Position, PublishResult, Rejection, Source
from hub.core.errors import HubError, InvalidRecord, RetriableError
from hub.core.log import get_logger


class SourceRunner:
    """The runtime side of one source (its ``SourceContext``), run in a thread of its own.

    Args:
        source: the source to run.
        builder: validates and encodes its changes.
        publisher: its transactional producer.
        metrics: the sidecar's metrics.
        on_fatal: called when the source must stop for good (fenced by a newer sidecar).
        backoff: retry delays (default 0.5 s doubling to 30 s).
        stall_after_s: a batch in flight longer than this shows as "stalled" on /healthz.
    """

    def __init__(
        self,
        source: Source,
        *,
        builder: EventBuilder,
        publisher: TransactionalPublisher,
        metrics: SidecarMetrics,
        on_fatal: Callable[[str, Exception], None] | None = None,
        backoff: Backoff | None = None,
        stall_after_s: float = 10.0,
    ) -> None:
        self.source = source
        self.builder = builder
        self.publisher = publisher
        self.metrics = metrics
        self.on_fatal = on_fatal
        self.backoff = backoff or Backoff()
        self.state = "starting"
        self.last_error: str | None = None
        self.last_commit_ms: int | None = None
        self.stall_after_s = stall_after_s
        self._publishing_since: float | None = None
        self._position: Position | None = None
        self._prepared = False
        self._thread: threading.Thread | None = None
        self.log = get_logger("source_runner", source=source.name)
        self._up = metrics.source_up.labels(source=source.name)
        self._last_commit_gauge = metrics.last_source_commit.labels(source=source.name)
        self._published = {code: metrics.published.labels(resource=code) for code in source.resources}
        source.bind(self)
        if "wal_held_bytes" in source.health():
            export_wal_held(metrics, source.name, source.health)

    @property
    def committed(self) -> Position | None:
        """The last position this runner knows committed (None before the first open or commit)."""
        return self._position

    # --- SourceContext --------------------------------------------------------------------------

    def committed_position(self) -> Position | None:
        if not self.publisher.is_open:
            if not self._prepared:
                self.builder.prepare()  # a registry refusing our schemas shows now, not mid-stream
                self._prepared = True
            self._position = self.publisher.open()
            # Not the position itself: a snapshot position holds a business key (maybe an ID number).
            self.log.info("source_resumed", first_start=self._position is None)
            self._running()
        return self._position

    def publish(self, batch: Batch) -> PublishResult:
        started = time.perf_counter()
        records: list[OutRecord] = []
        rejected: list[Rejection] = []
        counts: dict[str, int] = {}
        dead: list[tuple[str, str]] = []
        newest_commit = 0
        for index, change in enumerate(batch.changes):
            try:
                records.append(self.builder.event(change))
            except InvalidRecord as problem:
                records.append(self.builder.dead_letter(change, problem))
                rejected.append(Rejection(index, problem.reason, problem.field, problem.detail))
                dead.append((change.resource, problem.reason))
                continue
            counts[change.resource] = counts.get(change.resource, 0) + 1
            newest_commit = max(newest_commit, change.commit_ts_ms)
        self._publishing_since = time.monotonic()
        try:
            self.publisher.commit(records, batch.position)
        except Fenced as exc:
            self._fatal(exc)
            raise
        except RetriableError as exc:
            self.state = "retrying"  # push sources keep running; their next request reopens
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._up.set(0)
            raise
        finally:
            self._publishing_since = None
        self._position = batch.position
        self.backoff.reset()
        self._running()
        for code, n in counts.items():
            counter = self._published.get(code) or self.metrics.published.labels(resource=code)
            counter.inc(n)
        for resource, reason in dead:
            self.metrics.dead_lettered.labels(
                resource=resource if resource in self._published else "unknown", reason=reason
            ).inc()
            self.log.warning("change_dead_lettered", resource=resource[:64], reason=reason)
        if newest_commit:
            self.last_commit_ms = newest_commit
            self._last_commit_gauge.set(newest_commit / 1000)
        self.log.debug(
            "batch_published",
            events=sum(counts.values()),
            dead_letters=len(rejected),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return PublishResult(sum(counts.values()), rejected)

    # --- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"source-{self.source.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.source.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def run(self) -> None:
        """Run the source until it is stopped, retrying it through outages."""
        stopping = self.source.stopping
        try:
            while not stopping.is_set():
                try:
                    self.source.run()
                    break
                except Fenced as exc:
                    self._fatal(exc)
                    break
                except (RetriableError, KafkaError) as exc:
                    self._retry(exc, getattr(exc, "retry_after", 0.0), error=False)
                except HubError as exc:
                    # Needs an operator (e.g. install not run, schema refused): keep trying slowly,
                    # so fixing it does not need a restart.
                    self._retry(exc, 10.0, error=True)
                except Exception as exc:
                    self.log.exception("source_crashed", error=type(exc).__name__)
                    self._retry(exc, 10.0, error=True)
        finally:
            self.publisher.close()
            self._up.set(0)
            if self.state != "failed":
                self.state = "stopped"
            self.log.info("source_stopped")

    def _retry(self, exc: BaseException, hint: float, *, error: bool) -> None:
        self.publisher.close()
        self.state = "retrying"
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._up.set(0)
        delay = self.backoff.next_delay(hint)
        (self.log.error if error else self.log.warning)(
            "source_retry", error=type(exc).__name__, message=str(exc)[:500], retry_in_s=round(delay, 2)
        )
        self.source.stopping.wait(delay)

    def _running(self) -> None:
        if self.state != "running":
            self.state = "running"
            self.last_error = None
            self._up.set(1)

    def _fatal(self, exc: Exception) -> None:
        self.state = "failed"
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.log.error("source_fenced", message=str(exc))
        self.source.stop()
        if self.on_fatal is not None:
            self.on_fatal(self.source.name, exc)

    def status(self) -> dict[str, Any]:
        """For /healthz."""
        state = self.state
        since = self._publishing_since
        if state == "running" and since is not None and time.monotonic() - since > self.stall_after_s:
            state = "stalled"  # a batch hangs on Kafka: the broker is likely gone
        return {
            "kind": self.source.kind,
            "state": state,
            "last_error": self.last_error,
            "last_commit_ms": self.last_commit_ms,
            **self.source.health(),
        }
