"""The composition root of `xhub run`: wire one hub worker together and run it.

The engine knows nothing of the registry server, the admin port or the provisioning code; this module
starts them beside the worker (config, registry, secret, admin server, worker thread).
"""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

from hub.config.loader import ConfigDir
from hub.config.models import HubSpec
from hub.config.secrets import audit_key, hub_secret
from hub.config.signing import snapshot_verifier
from hub.core.log import get_logger
from hub.engine.policy_set import PolicySet, policy_set_of_config
from hub.engine.stats import WorkerStats
from hub.engine.worker import HubWorker, WorkerOptions

if TYPE_CHECKING:
    from hub.registry.authorization import SubjectAuthorizer

log = get_logger("runner")


def initial_policies(cfg: ConfigDir, hub: str, secret: bytes) -> PolicySet:
    """The policy set of ``hub`` compiled from the config directory (before any applied snapshot)."""
    return policy_set_of_config(cfg, hub, secret=secret)


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


class StartOptions(TypedDict, total=False):
    """How :func:`start_hub` starts a worker; every key is optional."""

    worker_id: int  # default 0
    registry_port: int | None  # the built-in registry's port (default: the hub's registry_port)
    admin_port: int | None  # default: the hub's admin_port + worker_id, or any free port
    admin_host: str  # interface of the admin port (default 127.0.0.1; a pod's probes need 0.0.0.0)
    serve_registry: bool | None  # default: when hubs.yaml names no registry url
    follow_config: bool  # follow xhub.cfg.<hub> (default True)
    start_thread: bool  # False: the caller runs worker.run() itself, e.g. under a profiler (default True)
    serve_admin: bool  # default True
    first_start: Literal["state", "replay"]  # see WorkerOptions.first_start (default "state")


def start_hub(cfg: ConfigDir, hub: str, **options: Unpack[StartOptions]) -> HubProcess:
    """Start one worker of ``hub`` in a background thread (plus the built-in registry and admin port)."""
    from hub.core.registry.client import RegistryClient
    from hub.core.registry.serde import AvroSerde

    spec = cfg.hub(hub)
    secret = hub_secret(cfg, hub)
    worker_id = options.get("worker_id", 0)
    closers: list[Any] = []
    url = _registry(cfg, spec, options, closers)
    worker = HubWorker(
        cfg.hubs_file.kafka,
        initial_policies(cfg, hub, secret),
        AvroSerde(RegistryClient(url, tls=cfg.hubs_file.kafka.tls())),
        secret,
        WorkerOptions(
            hub=hub,
            worker_id=worker_id,
            batch_max_records=spec.batch_max_records,
            batch_max_ms=spec.batch_max_ms,
            follow_config=options.get("follow_config", True),
            first_start=options.get("first_start", "state"),
            state_partitions=spec.partitions,
            audit_key=audit_key(cfg, hub).get_secret_value().encode("utf-8"),
            config_verifier=snapshot_verifier(cfg.hubs_file.config_signing),
        ),
        stats=WorkerStats(),
    )
    thread = threading.Thread(target=_run_logged, args=(worker,), name=f"hub-{hub}-{worker_id}", daemon=True)
    admin_url = None
    if options.get("serve_admin", True):
        from hub.monitor.admin import AdminOptions, AdminServer

        # Workers of one hub on one machine each get their own admin port.
        port = options.get("admin_port")
        if port is None:
            port = spec.admin_port + worker_id if spec.admin_port else 0
        host = options.get("admin_host", "127.0.0.1")
        admin = AdminServer(cfg, hub, worker, registry_url=url, options=AdminOptions(port=port, host=host))
        admin.start()
        closers.append(admin.stop)
        admin_url = admin.url
        admin.attach_thread(thread)
    if options.get("start_thread", True):
        thread.start()
    return HubProcess(worker, url, admin_url, thread, closers)


def _registry(cfg: ConfigDir, spec: HubSpec, options: StartOptions, closers: list[Any]) -> str:
    """The registry's url: the configured one, or the built-in one started here (its closer added)."""
    url = cfg.hubs_file.registry.url
    serve = options.get("serve_registry")
    builtin = serve if serve is not None else url is None
    if builtin:
        from hub.registry.local import registry_url

        stack = ExitStack()
        port = options.get("registry_port")
        serve_on = spec.registry_port if port is None else port
        url = stack.enter_context(
            registry_url(
                cfg.hubs_file.kafka,
                None,
                cfg.hubs_file.registry.topic,
                client_id="registry",
                port=serve_on,
                authorizer=registry_authorizer(cfg),
            )
        )
        closers.append(stack.close)
    assert url is not None
    return url


def registry_authorizer(cfg: ConfigDir) -> SubjectAuthorizer:
    """Who may write which subject at a built-in registry served with mutual TLS: the parties of ``cfg``."""
    from hub.provision.credentials import registry_grantees
    from hub.registry.authorization import SubjectAuthorizer

    return SubjectAuthorizer(registry_grantees(cfg))


def _run_logged(worker: HubWorker) -> None:
    try:
        worker.run()
    except Exception as exc:
        log.exception("worker_failed", hub=worker.hub, error=f"{type(exc).__name__}: {exc}")
        raise


def run_hub(cfg: ConfigDir, hub: str, **options: Unpack[StartOptions]) -> int:
    """Run until SIGTERM/SIGINT; the batch in hand is committed or aborted, never half-written."""
    process = start_hub(cfg, hub, **options)
    worker_id = options.get("worker_id", 0)
    stop = _stop_on_signals()
    log.info("hub_running", hub=hub, worker=worker_id, registry=process.registry_url, admin=process.admin_url)
    while not stop.is_set() and process.thread.is_alive():
        stop.wait(0.5)
    process.close()
    return 0 if stop.is_set() else 1


def run_registry(cfg: ConfigDir, *, host: str, port: int) -> int:
    """Serve the built-in registry alone until SIGTERM/SIGINT (a cluster's sidecars and hubs share it).

    Several copies may run: the registry's writers share one transactional id, so Kafka serialises them.
    """
    from hub.registry.local import serve_registry

    stop = _stop_on_signals()
    with serve_registry(
        cfg.hubs_file.kafka,
        cfg.hubs_file.registry.topic,
        host=host,
        port=port,
        authorizer=registry_authorizer(cfg),
    ) as url:
        log.info("registry_running", url=url, topic=cfg.hubs_file.registry.topic)
        stop.wait()
    return 0


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (how Kubernetes and compose stop a container)."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
