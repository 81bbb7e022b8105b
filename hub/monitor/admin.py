"""The hub's admin port: the status page, its JSON, Prometheus metrics, health and readiness.

    GET /             status page (HTML; refreshes itself from /api/status)
    GET /api/status   subscriptions with status, lag in records and seconds, throughput, dead letters,
                      and the alerts an operator must act on (see alerts.py)
    GET /metrics      Prometheus text exposition of this hub's own registry
    GET /healthz      200 while the process serves
    GET /readyz       200 once the worker consumes and its thread is alive, else 503

A monitor thread measures the lags every ``interval`` seconds (the status windows live there), so a
request never waits for Kafka. It shares the process (and the GIL) with the hub worker, so its cost must
not grow with the catalog: a refresh reuses what did not change (targets, topic metadata, idle windows; see
``hub.monitor.lag`` and ``hub.monitor.board``), and when a refresh still takes longer than ``max_share`` of
the interval, the interval grows so the monitor keeps under that share of the time (shown on the page).

The server binds 127.0.0.1 unless told otherwise: put a reverse proxy with authentication in front of it
to expose it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hub.core.bounded_http import BoundedHTTPServer, BoundedRequestHandler, HttpLimits
from hub.core.log import get_logger
from hub.governance.overdue import HubRequestWatch, OverdueRequests
from hub.monitor.alerts import AlertCollector
from hub.monitor.backlog import BacklogReader, source_views
from hub.monitor.board import LagBoard, SubscriptionLag, status_counts
from hub.monitor.dead_letters import DeadLetterTally, DepartmentDeadLetters
from hub.monitor.history import LagHistory
from hub.monitor.lag import Decoder, LagProbe, Target, refusals_change_at, targets_of_plans
from hub.monitor.metrics import HubCollector, LagSeries
from hub.monitor.path import PathState, path_state
from hub.monitor.path_metrics import PathCollector
from hub.monitor.progress import ProgressTracker, backfill_figures, restore_figures
from hub.monitor.share_requests import ShareRequestCollector
from hub.monitor.snapshot import (
    MonitorState,
    Rates,
    StatusEncoder,
    StatusHeader,
    copy_stats,
    status_document,
)
from hub.monitor.status import Rules
from hub.monitor.update_cycle import UpdateCycleCollector

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir
    from hub.engine.worker import HubWorker
    from hub.policy.plan import DeliveryPlan

log = get_logger("monitor.admin")

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/status.css": ("status.css", "text/css; charset=utf-8"),
    "/status.js": ("status.js", "text/javascript; charset=utf-8"),
}


def static_file(name: str) -> bytes:
    """A file of ``hub/monitor/static`` (shipped as package data)."""
    return resources.files("hub.monitor").joinpath("static", name).read_bytes()


# A status page, a scrape and probes: a few requests at once, never a body (issue 15, point 5).
ADMIN_LIMITS = HttpLimits(max_concurrent=16, max_body_bytes=0, request_timeout_s=10.0)


@dataclass(frozen=True)
class AdminOptions:
    """Where the admin port listens and how often its monitor measures.

    Attributes:
        port: TCP port; 0 picks a free one (see :attr:`AdminServer.url`).
        host: interface to bind.
        window: seconds of the status window (STOP after no progress for longer).
        interval: seconds between lag measurements (at least; see ``max_share``).
        stall_after: seconds without progress before STALL (default: window / 4).
        max_share: most of the time the monitor thread may spend measuring: when refreshes take longer
            than this share of ``interval``, the interval grows to refresh time / ``max_share``.
        max_interval: the longest interval it grows to (default: half the window).
    """

    port: int = 0
    host: str = "127.0.0.1"
    window: float = 60.0
    interval: float = 2.0
    stall_after: float | None = None
    max_share: float = 0.05
    max_interval: float | None = None


class AdminServer:
    """Serves the admin port of one hub worker from background threads.

    Args:
        cfg: the config the hub was started with (department names for the page, Kafka settings).
        hub: hub name.
        worker: the worker whose counters, plans and readiness are shown.
        registry_url: the schema registry, to read the source commit time out of waiting events.
        options: where it listens and how often it measures (defaults: a free port on loopback).
    """

    def __init__(
        self,
        cfg: ConfigDir,
        hub: str,
        worker: HubWorker,
        *,
        registry_url: str | None,
        options: AdminOptions | None = None,
    ) -> None:
        opts = options or AdminOptions()
        port, host, window, interval = opts.port, opts.host, opts.window, opts.interval
        stall_after, max_share, max_interval = opts.stall_after, opts.max_share, opts.max_interval
        self.cfg = cfg
        self.hub = hub
        self._log = log.bind(hub=hub)
        self.worker = worker
        self.registry_url = registry_url
        self.host = host
        self.rules = Rules(window=window, stall_after=stall_after)
        self.interval = interval
        self.max_share = max_share
        self.max_interval = max(interval, window / 2 if max_interval is None else max_interval)
        self.description = cfg.hubs[hub].description if hub in cfg.hubs else ""
        self.department_names = {d.id: d.name for d in cfg.departments.values()}
        self._port = port
        self._state = MonitorState()
        self._stop = threading.Event()
        self._httpd: BoundedHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._worker_thread: threading.Thread | None = None
        self._targets: _Targets | None = None
        self._spent: list[float] = []  # wall seconds of the last refreshes
        self.decoder: Decoder | None = None
        registry_clients: dict[str, Any] = {}
        engine_serde = getattr(worker, "serde", None)
        if engine_serde is not None and hasattr(engine_serde, "client"):
            registry_clients["engine"] = engine_serde.client
        if registry_url:
            from hub.core.registry.client import RegistryClient
            from hub.core.registry.serde import AvroSerde

            client = RegistryClient(registry_url, tls=cfg.hubs_file.kafka.tls())
            self.decoder = AvroSerde(client)
            registry_clients["monitor"] = client
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = HubCollector(
            hub, worker.stats, lambda: self._state, self.is_ready, registry_clients, lag_series=False
        )
        self.registry.register(self.collector)
        self.registry.register(AlertCollector(hub, worker.stats))
        self.registry.register(PathCollector(hub, lambda: self._state))
        self.history = LagHistory()
        self._requests = HubRequestWatch(cfg)  # overdue share requests (hub.governance)
        self.registry.register(ShareRequestCollector(hub, self.share_requests))
        self.registry.register(UpdateCycleCollector(hub, lambda: self.worker.policies))
        self.lag_series = LagSeries(hub)
        self._encoder = StatusEncoder()

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1] if self._httpd else self._port

    @property
    def url(self) -> str:
        """Base URL of the admin port, e.g. ``http://127.0.0.1:8090``."""
        return f"http://{self.host}:{self.port}"

    def attach_thread(self, thread: threading.Thread) -> None:
        """The thread running the worker; /readyz answers 503 once it has died."""
        self._worker_thread = thread

    def start(self) -> None:
        """Bind the port and start serving and measuring."""
        if self._httpd is not None:
            return
        handler = type("AdminRequestHandler", (_AdminRequestHandler,), {"admin": self})
        self._httpd = BoundedHTTPServer((self.host, self._port), handler, ADMIN_LIMITS)
        serve = threading.Thread(target=self._httpd.serve_forever, name=f"admin-http-{self.hub}", daemon=True)
        monitor = threading.Thread(target=self._monitor_loop, name=f"admin-monitor-{self.hub}", daemon=True)
        self._threads = [serve, monitor]
        serve.start()
        monitor.start()
        self._log.info("admin_server_started", url=self.url)

    def stop(self) -> None:
        """Stop measuring and serving; close the socket."""
        self._stop.set()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.stop()  # within seconds, whatever slow clients do
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        if httpd is not None:
            self._log.info("admin_server_stopped", port=httpd.server_address[1])

    # -- what the routes answer ------------------------------------------------------------------
    def is_ready(self) -> bool:
        return self.readiness()[0]

    def readiness(self) -> tuple[bool, str]:
        """(ready, why not) of the worker: it consumes, and the thread running it is alive."""
        if not self.worker.ready.is_set():
            return False, "worker not started yet"
        thread = self._worker_thread or self._find_worker_thread()
        if thread is not None and not thread.is_alive():
            return False, f"worker thread {thread.name} has stopped"
        return True, "ready"

    def _find_worker_thread(self) -> threading.Thread | None:
        # start_hub names the worker thread hub-<hub>-<worker id>; attach_thread is the explicit way.
        options = getattr(self.worker, "options", None)
        name = f"hub-{self.hub}-{getattr(options, 'worker_id', 0)}"
        return next((t for t in threading.enumerate() if t.name == name), None)

    def status(self) -> dict[str, Any]:
        """The document of /api/status."""
        return status_document(
            self._header(), copy_stats(self.worker.stats), self._state, self.department_names
        )

    def status_body(self) -> bytes:
        """:meth:`status` encoded (what /api/status answers), reusing the text of unchanged rows."""
        return self._encoder.encode(
            self._header(), copy_stats(self.worker.stats), self._state, self.department_names
        )

    def _header(self) -> StatusHeader:
        now_ms = time.time_ns() // 1_000_000
        requests = self.share_requests().to_json()
        return StatusHeader(self.hub, self.description, self.is_ready(), now_ms, self.rules.window, requests)

    def share_requests(self) -> OverdueRequests:
        """The hub's share requests pending past their answer day (the subscriptions and grants in force)."""
        policies = self.worker.policies
        return self._requests.overdue(policies.subscriptions, policies.grants)

    def metrics(self) -> bytes:
        """The Prometheus text exposition of /metrics."""
        return generate_latest(self.registry) + self.lag_series.render(self._state.rows)

    # -- the monitor thread ----------------------------------------------------------------------
    def targets(self) -> tuple[Target, ...]:
        """The subscriptions the worker serves now; the same tuple while its plans and refusals stay."""
        plans = self.worker.policies.plans
        now_ms = time.time_ns() // 1_000_000
        cached = self._targets
        if (
            cached is not None
            and cached.plans is plans
            and cached.count == len(plans)
            and (cached.until_ms is None or now_ms < cached.until_ms)
        ):
            return cached.targets
        values = list(plans.values())
        targets = tuple(targets_of_plans(self.hub, values, now_ms))
        self._targets = _Targets(plans, len(plans), targets, refusals_change_at(values, now_ms))
        return targets

    def next_wait(self, spent: float) -> float:
        """Seconds from the end of a refresh that took ``spent`` seconds to the start of the next one.

        ``interval``, or longer when refreshes take more than ``max_share`` of it, up to ``max_interval``.
        The cost is the shorter of the last two refreshes, so one slow answer from Kafka (or the first
        refresh, which opens the clients and looks every topic up) does not stretch the interval.
        """
        self._spent = [*self._spent[-1:], spent]
        cost = min(self._spent) if len(self._spent) > 1 else 0.0
        period = min(max(self.interval, cost / self.max_share), self.max_interval)
        return max(0.0, period - spent)

    def _refresh(self, monitor: _Monitor) -> float:
        """Measure once and publish the new state; return the seconds to wait before the next refresh."""
        started = time.monotonic()
        known = self._targets
        targets = self.targets()
        if known is not None and known.targets is not targets and monitor.probe is not None:
            monitor.probe.recheck_missing()  # the plans changed: `xhub apply` may have created topics
        state = self._state
        try:
            rows, dead = monitor.measure(targets)
        except Exception as exc:  # noqa: BLE001 - the monitor must outlive any failure; it is reported
            errors = state.refresh_errors + 1
            self._log.warning("monitor_refresh_failed", error=f"{type(exc).__name__}: {exc}")
            self._state = replace(
                state, targets=targets, error=f"{type(exc).__name__}: {exc}", refresh_errors=errors
            )
            return self.interval
        self.collector.feed()
        monitor.rates.add(time.time(), copy_stats(self.worker.stats, rings=False))
        path = self._path(monitor, rows, targets)
        spent = time.monotonic() - started
        wait = self.next_wait(spent)
        self._state = MonitorState(
            targets,
            tuple(rows),
            time.time_ns() // 1_000_000,
            spent,
            None,
            state.refresh_errors,
            dead,
            monitor.rates.delivered(),
            monitor.rates.consumed(),
            spent + wait,
            self.interval,
            self.max_share,
            status_counts(rows),
            path=path,
            history=self.history,
        )
        return wait

    def _path(self, monitor: _Monitor, rows: list[SubscriptionLag], targets: tuple[Target, ...]) -> PathState:
        """Backfills, restore and the owners' source backlogs of this refresh; samples the lag history."""
        now = time.time()
        backfills = monitor.progress.backfills(now, backfill_figures(self.worker.backfills))
        restore = monitor.progress.restore(now, restore_figures(self.worker.stats))
        sources, error = monitor.source_backlogs(sorted({t.owner for t in targets}))
        state = path_state(rows, backfills, restore, sources, error)
        self.history.add(now, {sid: p.seconds for sid, p in state.paths.items()})
        return state

    def _monitor_loop(self) -> None:
        monitor = _Monitor(self)
        try:
            while not self._stop.is_set():
                self._stop.wait(self._refresh(monitor))
        finally:
            monitor.close()


@dataclass(frozen=True, slots=True)
class _Targets:
    """The targets of one set of plans, valid until a refusal changes (a grant starts or expires)."""

    plans: Mapping[str, DeliveryPlan]
    count: int
    targets: tuple[Target, ...]
    until_ms: int | None


class _Monitor:
    """The Kafka clients and windows of the monitor thread, (re)opened lazily: Kafka may be down at start."""

    def __init__(self, admin: AdminServer) -> None:
        self.admin = admin
        self.rates = Rates(admin.rules.window)
        self.board: LagBoard | None = None
        self.probe: LagProbe | None = None
        self.tally: DeadLetterTally | None = None
        self.progress = ProgressTracker(admin.rules.window)
        self.backlogs: BacklogReader | None = None

    def source_backlogs(self, owners: list[str]) -> tuple[tuple[Any, ...], str | None]:
        """The backlog views of the owners' sidecars, or the error that kept them from being read."""
        try:
            if self.backlogs is None:
                self.backlogs = BacklogReader(
                    self.admin.cfg.hubs_file.kafka, client_id=f"monitor-{self.admin.hub}-backlog"
                )
            reports = self.backlogs.latest(owners)
        except Exception as exc:  # noqa: BLE001 - the lags are still worth showing; the error is shown
            return (), f"{type(exc).__name__}: {exc}"
        return source_views(reports, self.admin.rules, time.time_ns() // 1_000_000), None

    def measure(
        self, targets: tuple[Target, ...]
    ) -> tuple[list[SubscriptionLag], dict[str, DepartmentDeadLetters]]:
        admin = self.admin
        kafka = admin.cfg.hubs_file.kafka
        # kafka-python clients reconnect by themselves once open; opening fails while Kafka is down.
        if self.probe is None:
            self.probe = LagProbe(kafka, admin.decoder, client_id=f"monitor-{admin.hub}")
        if self.board is None:
            self.board = LagBoard(self.probe, admin.rules)
        if self.tally is None:
            owners = [*admin.department_names, admin.hub]
            self.tally = DeadLetterTally(kafka, owners, client_id=f"monitor-{admin.hub}-dlq")
        rows = self.board.refresh(targets)
        return rows, self.tally.refresh(timeout=1.0)

    def close(self) -> None:
        for client in (self.probe, self.tally, self.backlogs):
            if client is not None:
                client.close()


class _AdminRequestHandler(BoundedRequestHandler):  # GET only: the admin port is read-only
    admin: ClassVar[AdminServer]
    server_version = "xhub-admin"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        path = self.path.split("?", 1)[0]
        routes: dict[str, Callable[[], None]] = {
            "/api/status": self._status,
            "/metrics": self._metrics,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
        }
        try:
            if path in routes:
                routes[path]()
            elif path in STATIC:
                name, content_type = STATIC[path]
                self._send(HTTPStatus.OK, static_file(name), content_type)
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away (a page reload)

    def _status(self) -> None:
        self._send(HTTPStatus.OK, self.admin.status_body(), "application/json; charset=utf-8")

    def _metrics(self) -> None:
        self._send(HTTPStatus.OK, self.admin.metrics(), CONTENT_TYPE_LATEST)

    def _healthz(self) -> None:
        self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")

    def _readyz(self) -> None:
        ready, why = self.admin.readiness()
        status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
        self._send(status, f"{why}\n".encode(), "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the signature http.server calls
        return  # scrapes every few seconds would flood the log; errors are logged where they happen
