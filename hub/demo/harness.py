"""The demo's processes and files: config copy, connector configs, the hub and sidecars it starts and stops.

Everything ``xhub demo`` (``hub.demo.run``) and the end-to-end benchmark run lives in one scratch folder, so
a run can be looked at afterwards (logs/, db/) and the next run starts from nothing.

On a secure broker (the ``XHUB_KAFKA_*`` environment of ``deploy/local/kafka.sh client-env``: the super
user) each party runs with its own certificate, issued by the broker's CA, as a deployment would: every
department's sidecar as the department, the hub as ``hub-<name>``, the registry as ``xhub-registry``, the
later applies as ``xhub-apply``, under the ACLs ``xhub apply`` made. The super user only sets up: clearing
the previous run and the first apply, which creates the ACLs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.config.signing import local_key_pair
from hub.core import names
from hub.core.errors import FatalError
from hub.core.kafka import make_admin
from hub.core.kafka_settings import ENV_PREFIX, KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.errors import RegistryError, RegistryUnavailable
from hub.provision.credentials import REGISTRY, hub_party, parties, write_credentials

HUB = "pudong"
SOURCE_DEPARTMENTS = ("court", "amr", "psb", "housing")
SUBSCRIBER_DEPARTMENTS = ("tax", "housing", "transport", "lujiazui")
SINK_TABLES = {
    "tax-debtors": "debtors",
    "tax-entities": "entities",
    "tax-estates": "estates",
    "housing-debtors": "debtors",
    "housing-persons": "persons",
    "transport-debtors": "debtors",
    "transport-licences": "licences",
    "transport-persons": "persons",
    "lujiazui-debtors": "debtors",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def say(text: str = "") -> None:
    """One line of the demo's output, flushed at once: people watch the demo as it runs."""
    print(text, flush=True)


@dataclass
class Demo:
    """One run of the demo in ``workdir`` against the Kafka at ``bootstrap``."""

    repo: Path
    workdir: Path
    bootstrap: str
    duration: float
    rate: float = 20.0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    credentials: Path | None = None  # the broker's CA folder on a secure broker: one identity per party
    party_names: dict[str, str] = field(default_factory=dict)  # department / hub -> certificate name

    # -- setup --------------------------------------------------------------------------------
    def prepare(self) -> ConfigDir:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        config = self.workdir / "config"
        shutil.copytree(self.repo / "deploy" / "demo" / "config", config)
        hubs = yaml.safe_load((config / "hubs.yaml").read_text(encoding="utf-8"))
        hubs["kafka"] = {"bootstrap_servers": self.bootstrap}
        self.registry_port, self.admin_port = free_port(), free_port()
        for hub in hubs["hubs"]:
            if hub["name"] == HUB:
                hub["registry_port"], hub["admin_port"] = self.registry_port, self.admin_port
        (config / "hubs.yaml").write_text(
            yaml.safe_dump(hubs, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        # The apply role's key pair, made once in the git-ignored deploy/local/.secrets: apply signs with
        # it, the hub installs only configs that verify with its public key.
        signing_key, public_key = local_key_pair(self.repo / "deploy" / "local" / ".secrets")
        self.env = {
            **os.environ,
            "XHUB_PUDONG_SECRET": "demo-only-secret-pudong-2026",
            "XHUB_CITY_SECRET": "demo-only-secret-city-2026",
            "XHUB_PUDONG_AUDIT_KEY": "demo-only-audit-key-pudong-2026",
            "XHUB_CITY_AUDIT_KEY": "demo-only-audit-key-city-2026",
            "XHUB_LOG_LEVEL": "INFO",
            "XHUB_CONFIG_SIGNING_KEY": signing_key.get_secret_value(),
            "XHUB_CONFIG_PUBLIC_KEY": public_key,
        }
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("XHUB_")})
        (self.workdir / "logs").mkdir(parents=True)
        cfg = load_config(config)
        self._issue_identities(cfg)
        return cfg

    # -- identities -------------------------------------------------------------------------------
    def _issue_identities(self, cfg: ConfigDir) -> None:
        """On a secure broker, the certificate of every party of the config, from the broker's CA."""
        kafka = KafkaSettings()
        self.party_names = {p.owner: p.name for p in parties(cfg) if p.kind == "department"}
        self.party_names[HUB] = hub_party(HUB)
        if kafka.tls() is None or not kafka.ssl_cafile:
            return  # plaintext: nobody has an identity
        self.credentials = Path(kafka.ssl_cafile).parent
        write_credentials(cfg, self.credentials)
        say(f"identities: a certificate per party from the broker's CA ({self.credentials})")

    def party_env(self, party: str) -> dict[str, str]:
        """The environment of a process that runs as ``party`` (a certificate name)."""
        if self.credentials is None:
            return dict(self.env)
        return {
            **self.env,
            ENV_PREFIX + "SSL_CERTFILE": str(self.credentials / f"{party}.pem"),
            ENV_PREFIX + "SSL_KEYFILE": str(self.credentials / f"{party}.key"),
        }

    @contextmanager
    def as_party(self, party: str) -> Iterator[None]:
        """This process connects as ``party`` while the block runs (an apply as the apply role)."""
        names_ = (ENV_PREFIX + "SSL_CERTFILE", ENV_PREFIX + "SSL_KEYFILE")
        saved = {n: os.environ.get(n) for n in names_}
        os.environ.update({n: self.party_env(party)[n] for n in names_ if n in self.party_env(party)})
        try:
            yield
        finally:
            for n, value in saved.items():
                if value is None:
                    os.environ.pop(n, None)
                else:
                    os.environ[n] = value

    def start_registry(self, timeout: float = 60) -> ConfigDir:
        """The schema registry as a process of its own (``xhub registry``, as ``xhub-registry``), named in
        hubs.yaml so that the hub, the sidecars and later applies use it; returns the config reloaded."""
        config = self.workdir / "config"
        hubs = yaml.safe_load((config / "hubs.yaml").read_text(encoding="utf-8"))
        scheme = "http" if self.credentials is None else "https"
        hubs["registry"] = {
            **(hubs.get("registry") or {}),
            "url": f"{scheme}://127.0.0.1:{self.registry_port}",
        }
        (config / "hubs.yaml").write_text(
            yaml.safe_dump(hubs, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        self.start(
            "registry",
            ["-m", "hub.cli", "registry", str(config), "--port", str(self.registry_port)],
            party=REGISTRY,
        )
        wait_for_registry(
            hubs["registry"]["url"],
            time.monotonic() + timeout,
            self.check_alive,
            f"the registry did not answer within {timeout:.0f} s "
            f"(see {self.workdir / 'logs' / 'registry.log'})",
        )
        return load_config(config)

    def clear_previous_run(self, cfg: ConfigDir) -> None:
        """Delete the demo's topics and consumer groups left by an earlier run, so counts start at zero."""
        admin = make_admin(cfg.hubs_file.kafka, "demo")
        try:
            owners = set(cfg.departments) | set(cfg.hubs)
            old = [t for t in admin.list_topics() if t.startswith("xhub.") and t.split(".")[2] in owners]
            if old:
                admin.delete_topics(old)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and set(old) & set(admin.list_topics()):
                    time.sleep(0.5)
            groups = [
                g[0] if isinstance(g, tuple) else getattr(g, "group_id", g) for g in admin.list_groups()
            ]
            ours = [g for g in groups if str(g).startswith((names.hub_group(HUB), f"{names.PREFIX}-sink-"))]
            if ours:
                admin.delete_groups(ours)
        finally:
            admin.close()
        say(f"cleared the previous run: {len(old)} topics")

    def write_connector_configs(self, subscriptions: set[str] | None = None) -> dict[str, Path]:
        subscriptions = set(SINK_TABLES) if subscriptions is None else subscriptions
        folder = self.workdir / "connectors"
        folder.mkdir()
        registry = f"{'http' if self.credentials is None else 'https'}://127.0.0.1:{self.registry_port}"
        sources = {
            "court": [
                ("debtors", "PD-CRD-0001", "dishonest_debtor"),
                ("casefiles", "PD-CRD-0002", "enforcement_case"),
            ],
            "amr": [
                ("entities", "PD-ENT-0001", "legal_entity"),
                ("licences", "PD-LIC-0001", "business_licence"),
            ],
            "psb": [("hukou", "PD-POP-0001", "person")],
            "housing": [("estates", "PD-EST-0001", "real_estate")],
        }
        paths = {}
        for dept in sorted(set(SOURCE_DEPARTMENTS) | set(SUBSCRIBER_DEPARTMENTS)):
            doc: dict[str, Any] = {
                "department": dept,
                "catalog": "../config",
                "registry_url": registry,
                "health": {"port": 0},
                "sources": [
                    {
                        "name": name,
                        "type": "sql_trigger",
                        "resource": code,
                        "database": f"../db/{dept}.db",
                        "table": table,
                        "poll_interval_ms": 50,
                    }
                    for name, code, table in sources.get(dept, [])
                ],
            }
            if dept in SUBSCRIBER_DEPARTMENTS:
                ours = [sid for sid in SINK_TABLES if sid.startswith(dept + "-") and sid in subscriptions]
                doc["sinks"] = (
                    [
                        {
                            "name": "inbox",
                            "hub": HUB,
                            "type": "sql",
                            "dsn": f"sqlite:///../db/{dept}-inbox.db",
                            "subscriptions": ours,
                            "tables": {sid: SINK_TABLES[sid] for sid in ours},
                        }
                    ]
                    if ours
                    else []
                )
            path = folder / f"{dept}.yaml"
            path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
            paths[dept] = path
        return paths

    def start(self, name: str, args: list[str], *, party: str) -> None:
        """Start a process of the demo that connects as ``party`` (its certificate name)."""
        log = (self.workdir / "logs" / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [sys.executable, *args],
            cwd=self.workdir,
            env=self.party_env(party),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = (self.workdir / "logs" / f"{name}.log").read_text(encoding="utf-8", errors="replace")[
                    -2000:
                ]
                raise FatalError(f"{name} exited with code {proc.returncode}; its log ends with:\n{tail}")

    def wait_ready(self, timeout: float = 90) -> None:
        url = f"http://127.0.0.1:{self.admin_port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise FatalError(
            f"the hub was not ready within {timeout:.0f} s (see {self.workdir / 'logs' / 'hub.log'})"
        )

    def status(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.admin_port}/api/status", timeout=3
            ) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except OSError:
            return {}

    def stop_all(self, keep: Collection[str] = ()) -> None:
        """Stop every process started, but those named in ``keep``."""
        stopping = {name: proc for name, proc in self.processes.items() if name not in keep}
        for proc in stopping.values():
            if proc.poll() is None:
                proc.terminate()
        for name, proc in stopping.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                say(f"{name} did not stop within 30 s: killed")

    # -- looking at the subscribers' databases ---------------------------------------------------
    def inbox_rows(self, sid: str) -> list[dict[str, Any]]:
        dept = sid.split("-", maxsplit=1)[0]
        path = self.workdir / "db" / f"{dept}-inbox.db"
        if not path.exists():
            return []
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            conn.row_factory = sqlite3.Row
            rows = conn.execute(f'SELECT * FROM "{SINK_TABLES[sid]}"').fetchall()  # noqa: S608 - fixed names
            conn.close()
        except sqlite3.Error:
            return []
        return [dict(r) for r in rows]


def wait_for_registry(url: str, deadline: float, check_alive: Callable[[], None], failure: str) -> None:
    """Until the registry at ``url`` answers (as the super user); ``check_alive`` between tries (a demo
    process that died is named at once).

    Raises:
        FatalError: ``failure``, when it has not answered by ``deadline`` (monotonic).
    """
    client = RegistryClient(url, timeout=2)
    while True:
        check_alive()
        try:
            client.subjects()
        except (RegistryError, RegistryUnavailable):
            if time.monotonic() > deadline:
                raise FatalError(failure) from None
            time.sleep(0.5)
        else:
            return
