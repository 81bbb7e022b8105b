"""The federated demo's Kafka clusters: one single-node cluster per party's organisation (Pudong, Xuhui,
the city), each run by deploy/local/kafka.sh on ports of its own, started and stopped by the demo.

The clusters are secure like the single demo's broker (mutual TLS, ACLs) unless ``plaintext``, and share
one CA (the demo's credentials folder): a party's certificate is accepted by every cluster, and what it
may do on each is what that cluster's ``xhub apply`` granted it there. A deployment would have a CA per
organisation; one CA here keeps the demo to one folder of identities.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hub.core.errors import FatalError

HEAP = "512m"  # three brokers on a small machine; the demo creates a few dozen partitions per cluster
UP_TIMEOUT_S = 300.0  # a first run fetches the jars with Maven


@dataclass(frozen=True)
class Cluster:
    """One cluster of the demo: ``name`` (the organisation), its client ``port`` (the controller listens
    on port + 1) and the folder of its data and logs."""

    name: str
    port: int
    home: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Clusters:
    """The demo's clusters, started with kafka.sh from ``repo``; ``credentials``: the shared CA and the
    super user's certificate (kafka.sh makes them), and later every party's."""

    repo: Path
    members: dict[str, Cluster]
    credentials: Path
    plaintext: bool = False

    @property
    def kafka_sh(self) -> Path:
        return self.repo / "deploy" / "local" / "kafka.sh"

    def _env(self, cluster: Cluster, lib: Path | None) -> dict[str, str]:
        env = {
            **os.environ,
            "XHUB_KAFKA_PORT": str(cluster.port),
            "XHUB_KAFKA_HOME": str(cluster.home),
            "XHUB_KAFKA_CREDENTIALS": str(self.credentials),
            "XHUB_KAFKA_HEAP": HEAP,
            "XHUB_PYTHON": sys.executable,
        }
        if lib is not None:
            env["XHUB_KAFKA_LIB"] = str(lib)
        return env

    def _args(self, command: str) -> list[str]:
        return [str(self.kafka_sh), command, *(["--plaintext"] if self.plaintext else [])]

    def up(self) -> None:
        """Start every cluster: the first alone (on a fresh clone it makes the shared CA and fetches the
        jars, which the others then use), the others in parallel."""
        shared = self.repo / "deploy" / "local" / ".kafka" / "lib"
        first, *others = self.members.values()
        lib: Path | None = shared if (shared / ".pom.sha").exists() else None
        self._wait(self._start(first, lib), first, "up")
        self._run_all(others, "up", lib or first.home / "lib")

    def down(self) -> None:
        """Stop every cluster (its data is kept in its home until the next run clears it)."""
        self._run_all(list(self.members.values()), "down", None, check=False)

    def running(self) -> list[str]:
        """The clusters whose broker still runs (`kafka.sh status`)."""
        out = []
        for cluster in self.members.values():
            status = subprocess.run(
                self._args("status"), env=self._env(cluster, None), capture_output=True, check=False
            )
            if status.returncode == 0:
                out.append(cluster.name)
        return out

    def _start(self, cluster: Cluster, lib: Path | None, command: str = "up") -> subprocess.Popen[str]:
        cluster.home.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            self._args(command),
            env=self._env(cluster, lib),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def _run_all(
        self, clusters: Iterable[Cluster], command: str, lib: Path | None, *, check: bool = True
    ) -> None:
        started = [(c, self._start(c, lib, command)) for c in clusters]
        failures = []
        for cluster, proc in started:
            try:
                self._wait(proc, cluster, command)
            except FatalError as exc:
                failures.append(str(exc))
        if failures and check:
            raise FatalError("\n".join(failures))

    @staticmethod
    def _wait(proc: subprocess.Popen[str], cluster: Cluster, command: str) -> None:
        try:
            out, _ = proc.communicate(timeout=UP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        if proc.returncode != 0:
            raise FatalError(
                f"kafka.sh {command} of the {cluster.name} cluster (port {cluster.port}, {cluster.home}) "
                f"failed: {out.strip()}"
            )

    def super_user_env(self) -> dict[str, str]:
        """The XHUB_KAFKA_* environment of the clusters' super user (`kafka.sh client-env`): the demo sets
        up (applies) as it; every party it starts connects with its own certificate instead."""
        cluster = next(iter(self.members.values()))
        out = subprocess.run(
            self._args("client-env"),
            env=self._env(cluster, None),
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise FatalError(f"kafka.sh client-env failed: {out.stderr.strip() or out.stdout.strip()}")
        env: dict[str, str] = {}
        for line in out.stdout.splitlines():
            words = shlex.split(line)
            if words[:1] == ["export"]:
                name, _, value = words[1].partition("=")
                env[name] = value
            elif words[:1] == ["unset"]:
                env.update(dict.fromkeys(words[1:], ""))  # "" = remove (see apply_env)
        return env


def apply_env(env: dict[str, str]) -> None:
    """Set ``env`` in this process's environment; an empty value removes the variable."""
    for name, value in env.items():
        if value:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
