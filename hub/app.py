"""The composition root of `xhub run`: wire one hub worker together and run it.

The engine knows nothing of the registry server, the admin port or the provisioning code; this module
starts them beside the worker (config, registry, secret, admin server, worker thread).
"""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.config.loader import ConfigDir
from hub.config.secrets import hub_secret
from hub.core.log import get_logger
from hub.engine.policy_set import PolicySet, build_policy_set
from hub.engine.stats import WorkerStats
from hub.engine.worker import HubWorker, WorkerOptions
from hub.provision.desired import config_snapshot, snapshot_digest

log = get_logger("runner")


def initial_policies(cfg: ConfigDir, hub: str, secret: bytes) -> PolicySet:
    """The policy set of ``hub`` compiled from the config directory (before any applied snapshot)."""
    digest = snapshot_digest(config_snapshot(cfg, hub))
    return build_policy_set(
        hub, cfg.subscriptions.values(), cfg.resources, cfg.schemas, secret=secret, digest=digest
    )


@dataclass
class HubProcess:
    """A running hub worker with its registry and admin server; ``close`` stops all of it."""

    worker: HubWorker
    registry_url: str
    admin_url: str | None
    thread: threading.Thread
    closers: list[Any] = field(default_factory=list)

    def close(self, timeout: float = 30) -> None:
        self.worker.stop()
        if self.thread.ident is not None:  # started (start_thread=False leaves it to the caller)
            self.thread.join(timeout)
        for closer in reversed(self.closers):
            closer()


def start_hub(
    cfg: ConfigDir,
    hub: str,
    *,
    worker_id: int = 0,
    registry_port: int | None = None,
    admin_port: int | None = None,
    serve_registry: bool | None = None,
    follow_config: bool = True,
    start_thread: bool = True,
    serve_admin: bool = True,
    first_start: Literal["state", "replay"] = "state",
) -> HubProcess:
    """Start one worker of ``hub`` in a background thread (plus the built-in registry and admin port).

    ``first_start``: where partitions the hub never read start (see ``WorkerOptions.first_start``).
    """
    from hub.core.registry.client import RegistryClient
    from hub.core.registry.serde import AvroSerde

    spec = cfg.hub(hub)
    secret = hub_secret(cfg, hub)
    kafka = cfg.hubs_file.kafka
    closers: list[Any] = []
    url = cfg.hubs_file.registry.url
    builtin = serve_registry if serve_registry is not None else url is None
    if builtin:
        from hub.registry.local import registry_url

        stack = ExitStack()
        serve_on = spec.registry_port if registry_port is None else registry_port
        url = stack.enter_context(
            registry_url(kafka, None, cfg.hubs_file.registry.topic, client_id="registry", port=serve_on)
        )
        closers.append(stack.close)
    assert url is not None
    serde = AvroSerde(RegistryClient(url))
    stats = WorkerStats()
    worker = HubWorker(
        kafka,
        initial_policies(cfg, hub, secret),
        serde,
        secret,
        WorkerOptions(
            hub=hub,
            worker_id=worker_id,
            batch_max_records=spec.batch_max_records,
            batch_max_ms=spec.batch_max_ms,
            follow_config=follow_config,
            first_start=first_start,
        ),
        stats=stats,
    )
    admin_url = None
    # Workers of one hub on one machine each get their own admin port.
    port = (spec.admin_port + worker_id if spec.admin_port else 0) if admin_port is None else admin_port
    from hub.monitor.admin import AdminServer

    admin = None
    if serve_admin:
        admin = AdminServer(cfg, hub, worker, registry_url=url, port=port)
        admin.start()
        closers.append(admin.stop)
        admin_url = admin.url
    thread = threading.Thread(target=_run_logged, args=(worker,), name=f"hub-{hub}-{worker_id}", daemon=True)
    if admin is not None:
        admin.attach_thread(thread)
    if start_thread:  # False: the caller runs worker.run() itself (e.g. under a profiler)
        thread.start()
    return HubProcess(worker, url, admin_url, thread, closers)


def _run_logged(worker: HubWorker) -> None:
    try:
        worker.run()
    except Exception as exc:
        log.exception("worker_failed", hub=worker.hub, error=f"{type(exc).__name__}: {exc}")
        raise


def run_hub(cfg: ConfigDir, hub: str, *, worker_id: int = 0) -> int:
    """Run until SIGTERM/SIGINT; the batch in hand is committed or aborted, never half-written."""
    process = start_hub(cfg, hub, worker_id=worker_id)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("hub_running", hub=hub, worker=worker_id, registry=process.registry_url, admin=process.admin_url)
    while not stop.is_set() and process.thread.is_alive():
        stop.wait(0.5)
    process.close()
    return 0 if stop.is_set() else 1
