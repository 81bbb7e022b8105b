"""Running a sidecar from a test: in-process (a thread) or as a real process (to SIGKILL it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connectors.config import load_connector_config
from connectors.runtime.sidecar import Sidecar
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.registry.server import RegistryServer
from hub.registry.store import MemorySchemaStore

_registry: RegistryServer | None = None
_registry_lock = threading.Lock()


def shared_registry() -> RegistryServer:
    """An in-memory schema registry for this test process (started once, on a free port)."""
    global _registry  # noqa: PLW0603 - one registry per test process, like the broker
    with _registry_lock:
        if _registry is None:
            server = RegistryServer(MemorySchemaStore(), port=0)
            server.start()
            _registry = server
        return _registry


def serde_for(url: str) -> AvroSerde:
    """A serde reading from the registry at ``url``."""
    return AvroSerde(RegistryClient(url))


@contextmanager
def running_sidecar(config_path: Path, *, ready_timeout_s: float = 30.0) -> Iterator[Sidecar]:
    """Run the sidecar of ``config_path`` in a thread; stop it (finishing batches) on exit."""
    sidecar = Sidecar(load_connector_config(config_path), install_signals=False)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(sidecar.run()), name="sidecar", daemon=True)
    thread.start()
    if not sidecar.ready.wait(ready_timeout_s):
        sidecar.stop()
        thread.join(30)
        raise AssertionError(f"sidecar of {config_path} did not start within {ready_timeout_s} s")
    try:
        wait_capturing(sidecar, ready_timeout_s)
        yield sidecar
    finally:
        sidecar.stop()
        thread.join(60)
        if thread.is_alive():
            raise AssertionError("sidecar did not stop within 60 s")
        if result and result[0] != 0:
            raise AssertionError(f"sidecar exited with {result[0]}")


def wait_capturing(sidecar: Sidecar, timeout_s: float = 30.0) -> None:
    """Wait until every source of ``sidecar`` has read its system once (or listens, for push sources)."""
    from connectors.sources.base import PollingSource
    from connectors.sources.http_push import HttpPushSource

    def capturing() -> bool:
        for source in sidecar.sources:
            if isinstance(source, PollingSource) and source.polls < 1:
                return False
            if isinstance(source, HttpPushSource) and not source.ready.is_set():
                return False
        return True

    if not wait_for(capturing, timeout_s=timeout_s):
        raise AssertionError(f"the sources did not start capturing within {timeout_s} s")


class SidecarProcess:
    """``python -m connectors run --config FILE`` as a child process, killable with SIGKILL."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("XHUB_LOG_LEVEL", "INFO")
        root = Path(__file__).resolve().parents[2]
        env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "connectors", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=log,
                env=env,
                cwd=root,
            )
        self.starts += 1

    def wait_started(self, timeout_s: float = 30.0) -> None:
        """Wait until the current process logged ``sidecar_started`` (it handles SIGTERM from then on)."""

        def started() -> bool:
            text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            return text.count('"sidecar_started"') >= self.starts

        if not wait_for(started, timeout_s=timeout_s):
            raise AssertionError(f"sidecar process did not start within {timeout_s} s (log: {self.log_path})")

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self.proc = None
        return code

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def wait_for(predicate: object, *, timeout_s: float = 30.0, interval_s: float = 0.1) -> bool:
    """Poll a zero-argument callable until it returns true or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(interval_s)
    return False
