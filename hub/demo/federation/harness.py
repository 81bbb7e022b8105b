"""The federated demo's setup and processes: three clusters, the config of each hub, a certificate per
party, the hubs, the courts' sidecars, the links and the credit centre's sidecar, all started and stopped
here. The processes themselves are the single demo's (hub.demo.harness.Demo: one log per process under
logs/, each process with its party's certificate).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.config.signing import local_key_pair
from hub.core import names
from hub.core.errors import FatalError
from hub.core.kafka_settings import KafkaSettings
from hub.demo.federation.clusters import Cluster, Clusters, apply_env
from hub.demo.federation.configs import LINK_SUBSCRIPTION, write_yaml
from hub.demo.federation.links import hub_link_source
from hub.demo.federation.parties import (
    CENTRE,
    CITY,
    DISTRICTS,
    LINK,
    District,
    write_city_side,
    write_district_config,
)
from hub.demo.federation.table import SubscriberTable
from hub.demo.harness import Demo, free_port, say, wait_for_registry
from hub.monitor.lag_path import read_admin
from hub.provision.credentials import REGISTRY, hub_party, write_credentials

DEFAULT_PORT_BASE = 39092
"""Pudong's cluster on this port, Xuhui's 10 above, the city's 20 above (each broker takes port and
port + 1): clear of `make demo`'s 9092 and the test suite's 19192/19292."""


@dataclass
class Federation:
    """One run of the federated demo in ``workdir``."""

    repo: Path
    workdir: Path
    port_base: int = DEFAULT_PORT_BASE
    plaintext: bool = False
    roots: dict[str, Path] = field(default_factory=dict)  # hub -> its config directory
    admin_ports: dict[str, int] = field(default_factory=dict)
    registry_ports: dict[str, int] = field(default_factory=dict)
    saved_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        hubs = [d.hub for d in DISTRICTS] + [CITY]
        self.clusters = Clusters(
            self.repo,
            {
                hub: Cluster(hub, self.port_base + 10 * i, self.workdir / "kafka" / hub)
                for i, hub in enumerate(hubs)
            },
            self.workdir / "credentials",
            plaintext=self.plaintext,
        )
        self.processes = Demo(repo=self.repo, workdir=self.workdir, bootstrap="", duration=0)

    # -- setup --------------------------------------------------------------------------------
    def prepare(self) -> None:
        """A fresh scratch folder (a previous run's clusters stopped first), the configs and the secrets."""
        if self.workdir.exists():
            self.clusters.down()
            shutil.rmtree(self.workdir)
        (self.workdir / "logs").mkdir(parents=True)
        signing_key, public_key = local_key_pair(self.repo / "deploy" / "local" / ".secrets")
        env = {
            "XHUB_LOG_LEVEL": "INFO",
            "XHUB_CONFIG_SIGNING_KEY": signing_key.get_secret_value(),
            "XHUB_CONFIG_PUBLIC_KEY": public_key,
        }
        for hub in self.clusters.members:  # demo-only secrets: the hubs' pseudonym and audit keys
            env[f"XHUB_{hub.upper()}_SECRET"] = f"demo-only-secret-{hub}-2026"
            env[f"XHUB_{hub.upper()}_AUDIT_KEY"] = f"demo-only-audit-key-{hub}-2026"
        self._set_env(env)
        for hub in self.clusters.members:
            self.admin_ports[hub], self.registry_ports[hub] = free_port(), free_port()
        for district in DISTRICTS:
            self.roots[district.hub] = write_district_config(
                self.workdir / district.hub / "config",
                district,
                bootstrap=self.bootstrap(district.hub),
                admin_port=self.admin_ports[district.hub],
                registry_port=self.registry_ports[district.hub],
                repo=self.repo,
            )
        self.roots[CITY] = write_city_side(
            self.workdir / CITY / "config",
            {d.hub: self.roots[d.hub] for d in DISTRICTS},
            bootstrap=self.bootstrap(CITY),
            admin_port=self.admin_ports[CITY],
            registry_port=self.registry_ports[CITY],
        )

    def _set_env(self, env: dict[str, str]) -> None:
        """Set ``env`` in this process (restored by :meth:`restore_env`) and in the processes it starts."""
        for name in env:
            self.saved_env.setdefault(name, os.environ.get(name, ""))
        apply_env(env)
        self.processes.env = dict(os.environ)

    def restore_env(self) -> None:
        apply_env(self.saved_env)

    def bootstrap(self, hub: str) -> str:
        return self.clusters.members[hub].bootstrap

    def kafka(self, hub: str) -> KafkaSettings:
        """The super user's settings for the cluster of ``hub`` (the demo reads and checks as it)."""
        return KafkaSettings(bootstrap_servers=self.bootstrap(hub))

    def config(self, hub: str) -> ConfigDir:
        return load_config(self.roots[hub])

    def copied_terms(self) -> dict[str, str]:
        """District hub -> the policy version of the city's copy of its published terms."""
        out = {}
        for district in DISTRICTS:
            path = self.roots[CITY] / "linked" / f"{district.hub}-{LINK_SUBSCRIPTION}.json"
            out[district.hub] = str(json.loads(path.read_text(encoding="utf-8"))["policy_version"])
        return out

    def registry_url(self, hub: str) -> str:
        scheme = "http" if self.plaintext else "https"
        return f"{scheme}://127.0.0.1:{self.registry_ports[hub]}"

    def admin_url(self, hub: str) -> str:
        return f"http://127.0.0.1:{self.admin_ports[hub]}"

    def start_clusters(self) -> None:
        """The three clusters, and this process connecting to them as their super user (to set up)."""
        self.clusters.up()
        self._set_env(self.clusters.super_user_env())
        if not self.plaintext:
            self.processes.credentials = self.clusters.credentials
            for hub in self.roots:
                write_credentials(self.config(hub), self.clusters.credentials)

    def apply_all(self) -> None:
        """`xhub apply` of every config on its cluster (topics, schemas, ACLs, the signed config)."""
        from hub.provision.session import provision_session

        for hub in self.roots:
            with provision_session(self.config(hub)) as session:
                _plan, result = session.apply()
            say(f"xhub apply {hub}: {len(result.done)} changes on {self.bootstrap(hub)}")

    # -- processes ----------------------------------------------------------------------------
    def start_registries(self, timeout: float = 90) -> None:
        """Each cluster's schema registry as a process of its own (``xhub registry``, as
        ``xhub-registry``, whose ACLs the apply made), named in that hubs.yaml: the hub, the sidecars and
        the links use it. (The apply before it served one in-process from the same topic.)"""
        for hub, root in self.roots.items():
            hubs = yaml.safe_load((root / "hubs.yaml").read_text(encoding="utf-8"))
            hubs["registry"] = {"url": self.registry_url(hub)}
            write_yaml(root / "hubs.yaml", hubs)
            port = str(self.registry_ports[hub])
            self.processes.start(
                f"registry-{hub}", ["-m", "hub.cli", "registry", str(root), "--port", port], party=REGISTRY
            )
        deadline = time.monotonic() + timeout
        for hub in self.roots:
            wait_for_registry(
                self.registry_url(hub),
                deadline,
                self.processes.check_alive,
                f"the registry of {hub} did not answer within {timeout:.0f} s "
                f"(see {self.workdir / 'logs' / f'registry-{hub}.log'})",
            )

    def start_hubs(self, timeout: float = 120) -> None:
        for hub, root in self.roots.items():
            self.processes.start(
                f"hub-{hub}", ["-m", "hub.cli", "run", str(root), "--hub", hub], party=hub_party(hub)
            )
        deadline = time.monotonic() + timeout
        for hub in self.roots:
            while not self._ready(hub):
                self.processes.check_alive()
                if time.monotonic() > deadline:
                    raise FatalError(
                        f"hub {hub} was not ready within {timeout:.0f} s (see {self.workdir / 'logs'})"
                    )
                time.sleep(0.5)

    def _ready(self, hub: str) -> bool:
        try:
            with urllib.request.urlopen(f"{self.admin_url(hub)}/readyz", timeout=2) as response:  # noqa: S310 - our admin port
                return bool(response.status == 200)
        except OSError:
            return False

    def start_courts(self, databases: dict[str, Path]) -> None:
        """Each court's sidecar (its triggers installed first), capturing its list from its database."""
        for district in DISTRICTS:
            doc: dict[str, Any] = {
                "department": district.court,
                "catalog": str(self.roots[district.hub]),
                "registry_url": self.registry_url(district.hub),
                "health": {"port": 0},
                "sources": [
                    {
                        "name": "debtors",
                        "type": "sql_trigger",
                        "resource": district.resource,
                        "database": str(databases[district.hub]),
                        "table": "dishonest_debtor",
                        "poll_interval_ms": 50,
                    }
                ],
            }
            path = self._connector_file(district.court, doc)
            out = subprocess.run(
                [sys.executable, "-m", "connectors", "install", "--config", str(path)],
                capture_output=True,
                text=True,
                env=self.processes.party_env(district.court),
                check=False,
            )
            if out.returncode != 0:
                reason = out.stderr.strip() or out.stdout.strip()
                raise FatalError(f"connector install for {district.court} failed: {reason}")
            self.processes.start(
                district.court, ["-m", "connectors", "run", "--config", str(path)], party=district.court
            )

    def _connector_file(self, name: str, doc: dict[str, Any]) -> Path:
        folder = self.workdir / "connectors"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    def start_link(self, district: District, *, name: str | None = None) -> None:
        """The link of ``district``: a sidecar of department ``district.hub`` of the city (its city
        identity), reading the district's deliveries to it with its district identity (``citylink``)."""
        source = hub_link_source(
            link_source_name(district),
            resource=district.resource,
            hub=district.hub,
            subscription=LINK_SUBSCRIPTION,
            registry_url=self.registry_url(district.hub),
            connection=self._connection(district.hub, LINK),
        )
        doc = {
            "department": district.hub,
            "catalog": str(self.roots[CITY]),
            "registry_url": self.registry_url(CITY),
            "health": {"port": 0},
            "sources": [source],
        }
        path = self._connector_file(f"link-{district.hub}", doc)
        self.processes.start(
            name or f"link-{district.hub}",
            ["-m", "connectors", "run", "--config", str(path)],
            party=district.hub,
        )

    def _connection(self, hub: str, party: str) -> dict[str, Any]:
        """How ``party`` connects to the cluster of ``hub`` (a connector config's ``kafka``)."""
        if self.plaintext:
            return {"bootstrap_servers": self.bootstrap(hub), "security_protocol": "PLAINTEXT"}
        creds = self.clusters.credentials
        return {
            "bootstrap_servers": self.bootstrap(hub),
            "security_protocol": "SSL",
            "ssl_cafile": str(creds / "ca.pem"),
            "ssl_certfile": str(creds / f"{party}.pem"),
            "ssl_keyfile": str(creds / f"{party}.key"),
        }

    def kill_link(self, district: District) -> int:
        """SIGKILL the link of ``district`` (no shutdown, an open transaction left behind); its pid."""
        proc = self.processes.processes.pop(f"link-{district.hub}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        return proc.pid

    def start_centre(self) -> SubscriberTable:
        """The credit centre's sidecar: one SQL sink applying both lists into one table, with receipts."""
        folder = self.workdir / "centre"
        folder.mkdir()
        table = SubscriberTable.of(
            folder,
            dept=CENTRE,
            catalog=self.roots[CITY],
            kafka=self.kafka(CITY),
            registry_url=self.registry_url(CITY),
            hub=CITY,
        )
        self.processes.start(
            CENTRE, ["-m", "connectors", "run", "--config", str(table.connector)], party=CENTRE
        )
        return table

    def status(self, hub: str) -> dict[str, Any]:
        """The status page's document of ``hub`` ({} while it does not answer)."""
        try:
            return read_admin(self.admin_url(hub))
        except OSError:
            return {}

    def lag_report(self, hub: str) -> str:
        """What `xhub lag CONFIG` shows for ``hub``: at the city, its links among the sources, its
        subscriptions' lags and (``--upstream``, each district's config) every hop of each linked
        subscription. As the super user: the operator's ACLs (DESCRIBE on xhub.*) do not let it read the
        records whose commit times and count `xhub lag` measures."""
        districts = DISTRICTS if hub == CITY else ()
        upstream = [arg for d in districts for arg in ("--upstream", str(self.roots[d.hub]))]
        out = subprocess.run(
            [sys.executable, "-m", "hub.cli", "lag", str(self.roots[hub]), "--samples", "1", *upstream],
            capture_output=True,
            text=True,
            env=self.processes.env,
            check=False,
            timeout=120,
        )
        return (out.stdout + out.stderr).rstrip()

    def stop(self) -> None:
        """Every process, then the clusters; this process's environment as it was."""
        try:
            self.processes.stop_all()
        finally:
            self.clusters.down()
            self.restore_env()


def delivery_topic_of_link(district: District) -> str:
    return names.delivery_topic(district.hub, LINK_SUBSCRIPTION)


def link_source_name(district: District) -> str:
    """The name of the link's source (the key of its position in the city cluster)."""
    return f"{district.hub}-debtors"
