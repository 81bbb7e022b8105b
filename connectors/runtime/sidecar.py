"""One department's sidecar: its sources and sinks, a health port, and a clean stop on SIGTERM.

``Sidecar.run`` creates the department's topics if asked, registers the schemas, starts one thread per
source (``SourceRunner``) and per sink (``connectors.runtime.sink_loop.SinkLoop``), serves /healthz,
/metrics and POST /snapshot, and waits. SIGTERM or SIGINT stops every loop after the batch in hand and
returns 0; a source fenced by a newer sidecar stops the whole sidecar with 1.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from connectors.config import LoadedConnector
from connectors.runtime.backlog import BacklogReporter
from connectors.runtime.events import EventBuilder
from connectors.runtime.health import HealthServer
from connectors.runtime.metrics import SidecarMetrics
from connectors.runtime.publisher import TransactionalPublisher
from connectors.runtime.retry import Backoff
from connectors.runtime.source_loop import SourceRunner
from connectors.sources import Source, build_source
from hub.core import names
from hub.core.errors import RetriableError
from hub.core.kafka import STATIC_MEMBER_SESSION_TIMEOUT_MS, ensure_topics, make_admin
from hub.core.log import get_logger
from hub.core.names import backlog_topic, dead_letter_topic, position_topic
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.core.replication import Replication, cluster_replication

COMPACTED = {"cleanup.policy": "compact"}
DEAD_LETTER_RETENTION = {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)}


class Sidecar:
    """Runs a loaded connector config until stopped.

    Args:
        loaded: the checked config (``connectors.config.load_connector_config``).
        snapshot: sources to re-snapshot at start (True: every source that can).
        install_signals: handle SIGTERM/SIGINT (only possible in the main thread).
        backlog_every_s: seconds between source backlog measurements (``connectors.runtime.backlog``).
        backlog_heartbeat_s: the longest time between two backlog reports while nothing changes.
    """

    def __init__(
        self,
        loaded: LoadedConnector,
        *,
        snapshot: bool | Sequence[str] = False,
        install_signals: bool = True,
        backlog_every_s: float = 5.0,
        backlog_heartbeat_s: float = 30.0,
    ) -> None:
        self.loaded = loaded
        self.dept = loaded.department
        self.snapshot_at_start = snapshot
        self.install_signals = install_signals
        self.metrics = SidecarMetrics()
        self.sources: list[Source] = []
        self.runners: list[SourceRunner] = []
        self.sink_loops: list[tuple[str, Any, threading.Thread]] = []
        self._sink_failed: dict[str, str] = {}
        self._applied_seen: dict[str, int] = {}
        self._stop = threading.Event()
        self._failed = threading.Event()
        self.health: HealthServer | None = None
        self.backlog: BacklogReporter | None = None
        self.backlog_every_s = backlog_every_s
        self.backlog_heartbeat_s = backlog_heartbeat_s
        self.ready = threading.Event()
        self.log = get_logger("sidecar", dept=self.dept)

    # --- control --------------------------------------------------------------------------------

    _stop_signal: str | None = None
    """The signal that asked the sidecar to stop (logged by ``run``)."""

    def stop(self) -> None:
        """Stop after the batches in hand (thread- and signal-safe)."""
        self._stop.set()

    def request_snapshot(self, source: str | None = None) -> list[str]:
        """Start a fresh snapshot of one source (or all that can); KeyError for an unknown name."""
        chosen = [s for s in self.sources if source is None or s.name == source]
        if source is not None and not chosen:
            raise KeyError(source)
        started = [s.name for s in chosen if s.request_snapshot()]
        self.log.info("snapshot_requested", sources=started)
        return started

    def status(self) -> dict[str, Any]:
        """Health: every source running and no sink failed."""
        sources = {r.source.name: r.status() for r in self.runners}
        latest = self.backlog.latest if self.backlog is not None else {}
        for name, backlog in latest.items():
            if name in sources:
                sources[name]["backlog"] = backlog.to_json()
        sinks = {}
        for name, _loop, thread in self.sink_loops:
            failed = self._sink_failed.get(name)
            sinks[name] = {
                "state": "failed" if failed else ("running" if thread.is_alive() else "stopped"),
                "last_error": failed,
            }
        healthy = (
            self.ready.is_set()
            and not self._stop.is_set()
            and all(s["state"] == "running" for s in sources.values())
            and all(s["state"] == "running" for s in sinks.values())
        )
        return {
            "status": "ok" if healthy else "degraded",
            "healthy": healthy,
            "department": self.dept,
            "sources": sources,
            "sinks": sinks,
        }

    # --- run ------------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT or ``stop()``; return the process exit code."""
        if self.install_signals:
            self._install_signal_handlers()
        config = self.loaded.config
        try:
            if config.create_topics:
                self._ensure_topics()
            if self._stop.is_set():
                return 0
            serde = AvroSerde(RegistryClient(self.loaded.registry_url, tls=self.loaded.kafka.tls()))
            self._start_sources(serde)
            self._start_sinks()
            self.backlog = BacklogReporter(
                self.dept,
                self.loaded.kafka,
                self.runners,
                self.metrics,
                every_s=self.backlog_every_s,
                heartbeat_s=self.backlog_heartbeat_s,
            )
            self.backlog.start()
            if config.health.enabled:
                self.health = HealthServer(
                    config.health.host,
                    config.health.port,
                    metrics=self.metrics,
                    status=self.status,
                    snapshot=self.request_snapshot,
                )
                self.metrics.before_render.append(self._sync_sink_metrics)
                self.health.start()
                self.log.info("health_listening", url=self.health.url)
            self.ready.set()
            self.log.info(
                "sidecar_started", sources=[s.name for s in self.sources], sinks=len(self.sink_loops)
            )
            self._stop.wait()
            if self._stop_signal is not None:
                self.log.info("stop_requested", signal=self._stop_signal)
        finally:
            self._shutdown()
        return 1 if self._failed.is_set() else 0

    def _install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            del frame
            # No logging here: a signal arriving while the main thread writes a log line would wait
            # forever for the logger's lock that the same thread holds (seen: SIGTERM right after
            # "sidecar_started" hung the sidecar). run() logs it once the wait returns.
            self._stop_signal = signal.Signals(signum).name
            self.stop()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)
            signal.signal(signal.SIGINT, handler)

    def _ensure_topics(self) -> None:
        """Create the department's topics, waiting (with backoff) while Kafka does not answer."""
        config = self.loaded.config
        from hub.core.names import source_topic

        wanted: dict[str, dict[str, str]] = {
            source_topic(self.dept, code): COMPACTED for code in self.loaded.resources
        }
        wanted[position_topic(self.dept)] = COMPACTED
        wanted[backlog_topic(self.dept)] = COMPACTED
        wanted[dead_letter_topic(self.dept)] = DEAD_LETTER_RETENTION
        kafka = self.loaded.kafka
        if config.replication_factor is not None:  # the connector's own setting wins over hubs.yaml's
            kafka = kafka.model_copy(update={"replication_factor": config.replication_factor})

        def replication(admin: KafkaAdminClient) -> Replication:
            return cluster_replication(admin, kafka)

        backoff = Backoff()
        while not self._stop.is_set():
            try:
                admin = make_admin(self.loaded.kafka, f"sidecar-{self.dept}")
                try:
                    created = ensure_topics(
                        admin, wanted, partitions=config.topic_partitions, replication=replication(admin)
                    )
                finally:
                    admin.close()
            except (RetriableError, KafkaError) as exc:
                delay = backoff.next_delay(getattr(exc, "retry_after", 0.0))
                self.log.warning("kafka_unavailable", error=type(exc).__name__, retry_in_s=round(delay, 2))
                self._stop.wait(delay)
                continue
            if created:
                self.log.info("topics_created", topics=created)
            return

    def _start_sources(self, serde: AvroSerde) -> None:
        config = self.loaded.config
        for source_config in config.sources:
            source = build_source(
                source_config, resources=self.loaded.resources, base_dir=self.loaded.base_dir
            )
            builder = EventBuilder(
                dept=self.dept,
                system=source_config.system_name,
                resources=source.specs,
                serde=serde,
                max_record_bytes=source_config.max_record_bytes,
            )
            publisher = TransactionalPublisher(
                self.loaded.kafka,
                transactional_id=names.source_transactional_id(self.dept, source.name),
                position_topic=position_topic(self.dept),
                position_key=source.name,
                written_topics=[
                    *(names.source_topic(self.dept, code) for code in source.resources),
                    dead_letter_topic(self.dept),
                ],
            )
            runner = SourceRunner(
                source, builder=builder, publisher=publisher, metrics=self.metrics, on_fatal=self._on_fatal
            )
            if self.snapshot_at_start is True or (
                not isinstance(self.snapshot_at_start, bool) and source.name in self.snapshot_at_start
            ):
                source.request_snapshot()
            self.sources.append(source)
            self.runners.append(runner)
        for runner in self.runners:
            runner.start()

    def _start_sinks(self) -> None:
        if not self.loaded.sinks:
            return
        from connectors.runtime.sink_loop import SinkLoop
        from connectors.sinks.config import build_sink
        from hub.core.names import delivery_topic

        for binding in self.loaded.sinks:
            topics = [delivery_topic(binding.hub, sub) for sub in binding.subscriptions]
            loop = SinkLoop(
                self.loaded.kafka,
                self.loaded.registry_url,
                topics,
                binding.group_id or names.sink_group(self.dept, binding.name),
                build_sink(binding.sink),
                dept=self.dept,
                client_id=f"sink-{self.dept}-{binding.name}",
                max_batch=binding.max_batch,
                # Static membership (as the hub workers have): a restarted sidecar takes its old place
                # in the group at once; a second copy of the same sidecar is fenced, as its sources are.
                consumer_overrides={
                    "group_instance_id": names.sink_instance_id(self.dept, binding.name),
                    "session_timeout_ms": STATIC_MEMBER_SESSION_TIMEOUT_MS,
                },
            )
            thread = threading.Thread(
                target=self._run_sink, args=(loop, binding.name), name=f"sink-{binding.name}", daemon=True
            )
            self.sink_loops.append((binding.name, loop, thread))
            thread.start()

    def _run_sink(self, loop: Any, name: str) -> None:
        backoff = Backoff(max_s=60.0)
        while not self._stop.is_set():
            try:
                loop.run()
            except Exception as exc:
                self._sink_failed[name] = f"{type(exc).__name__}: {exc}"
                delay = backoff.next_delay(10.0)
                self.log.exception(
                    "sink_failed", sink=name, error=type(exc).__name__, retry_in_s=round(delay, 2)
                )
            else:
                return
            if self._stop.wait(delay):
                return
            self._sink_failed.pop(name, None)

    def _sync_sink_metrics(self) -> None:
        for name, loop, _thread in self.sink_loops:
            written = int(loop.stats.written)
            seen = self._applied_seen.get(name, 0)
            if written > seen:
                self.metrics.applied.labels(sink=name).inc(written - seen)
                self._applied_seen[name] = written

    def _on_fatal(self, source: str, exc: Exception) -> None:
        self.log.error("sidecar_stopping", source=source, error=type(exc).__name__)
        self._failed.set()
        self.stop()

    def _shutdown(self) -> None:
        timeout = self.loaded.config.shutdown_timeout_s
        for runner in self.runners:
            runner.stop()
        for _name, loop, _thread in self.sink_loops:
            loop.stop()
        for runner in self.runners:
            if not runner.join(timeout):
                self.log.error("source_stop_timeout", source=runner.source.name, timeout_s=timeout)
        for _name, _loop, thread in self.sink_loops:
            thread.join(timeout)
        if self.backlog is not None:
            self.backlog.stop()
        if self.health is not None:
            self.health.stop()
        self.log.info("sidecar_stopped", failed=self._failed.is_set())
