"""`xhub demo`: the main job on one command.

A court's dishonest-debtor list and the market regulator's register reach tax, housing, transport and a
sub-district office within a second, each seeing only what it is entitled to (一处失信、处处受限):

1. copy deploy/demo/config to a scratch folder (free ports, the given Kafka), clear the previous run's topics;
2. create the departments' SQLite databases and seed them (Faker zh_CN: valid ID numbers, credit codes);
3. `xhub apply`, start the hub, install and start one sidecar per department;
4. make a stream of changes in the source databases while showing the rows arriving downstream;
5. print a summary (changes, deliveries, latency, refusals, dead letters) and stop everything it started.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.errors import FatalError
from hub.core.kafka import make_admin
from hub.demo.scenario import ChangeStream, DepartmentDbs
from hub.demo.summary import SINK_TABLES, print_summary, say

HUB = "pudong"
SOURCE_DEPARTMENTS = ("court", "amr", "psb", "housing")
SUBSCRIBER_DEPARTMENTS = ("tax", "housing", "transport", "lujiazui")
SHOWN = ("housing-debtors", "lujiazui-debtors", "housing-persons")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_say = say


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

    # -- setup --------------------------------------------------------------------------------
    def prepare(self) -> ConfigDir:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        config = self.workdir / "config"
        shutil.copytree(self.repo / "deploy" / "demo" / "config", config)
        hubs = yaml.safe_load((config / "hubs.yaml").read_text(encoding="utf-8"))
        hubs["kafka"] = {"bootstrap_servers": self.bootstrap}
        self.registry_port, self.admin_port = _free_port(), _free_port()
        for hub in hubs["hubs"]:
            if hub["name"] == HUB:
                hub["registry_port"], hub["admin_port"] = self.registry_port, self.admin_port
        (config / "hubs.yaml").write_text(
            yaml.safe_dump(hubs, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        self.env = {
            **os.environ,
            "XHUB_PUDONG_SECRET": "demo-only-secret-pudong-2026",
            "XHUB_CITY_SECRET": "demo-only-secret-city-2026",
            "XHUB_LOG_LEVEL": "INFO",
        }
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("XHUB_")})
        (self.workdir / "logs").mkdir(parents=True)
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
        _say(f"cleared the previous run: {len(old)} topics")

    def write_connector_configs(self, subscriptions: set[str] | None = None) -> dict[str, Path]:
        subscriptions = set(SINK_TABLES) if subscriptions is None else subscriptions
        folder = self.workdir / "connectors"
        folder.mkdir()
        registry = f"http://127.0.0.1:{self.registry_port}"
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

    def start(self, name: str, args: list[str]) -> None:
        log = (self.workdir / "logs" / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [sys.executable, *args], cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT
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

    def stop_all(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for name, proc in self.processes.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _say(f"{name} did not stop within 30 s: killed")

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


def run_demo(bootstrap: str, duration: float, *, repo: Path | None = None, rate: float = 20.0) -> int:
    repo = repo or Path(__file__).resolve().parents[2]
    demo = Demo(
        repo=repo,
        workdir=repo / "deploy" / "demo" / ".run",
        bootstrap=bootstrap,
        duration=duration,
        rate=rate,
    )
    started = time.monotonic()
    _say("== exchange-hub demo: 一处失信、处处受限 (discredited in one place, restricted everywhere) ==")
    cfg = demo.prepare()
    _say(
        f"config: {len(cfg.departments)} departments, {len(cfg.resources)} resources, "
        f"{len(cfg.subscriptions)} subscriptions; Kafka at {bootstrap}"
    )
    demo.clear_previous_run(cfg)
    dbs = DepartmentDbs(demo.workdir / "db")
    dbs.create()
    stream = ChangeStream(dbs)
    stream.seed_initial()
    _say("seeded the departments' databases (Faker zh_CN; valid ID numbers and credit codes)")
    from hub.provision.session import provision_session

    with provision_session(cfg) as session:
        _plan, result = session.apply()
    _say(f"xhub apply: {len(result.done)} changes (topics, schemas, config)")
    paths = demo.write_connector_configs()
    try:
        demo.start("hub", ["-m", "hub.cli", "run", str(demo.workdir / "config"), "--hub", HUB])
        demo.wait_ready()
        _say(
            f"hub {HUB} running: status page http://127.0.0.1:{demo.admin_port}/  "
            f"registry http://127.0.0.1:{demo.registry_port}"
        )
        for dept in SOURCE_DEPARTMENTS:
            out = subprocess.run(
                [sys.executable, "-m", "connectors", "install", "--config", str(paths[dept])],
                capture_output=True,
                text=True,
                env=demo.env,
                check=False,
            )
            if out.returncode != 0:
                raise FatalError(
                    f"connector install for {dept} failed: {out.stderr.strip() or out.stdout.strip()}"
                )
            _say(f"installed capture for {dept}: {out.stdout.strip().splitlines()[-1]}")
        for dept, path in paths.items():
            demo.start(f"sidecar-{dept}", ["-m", "connectors", "run", "--config", str(path)])
        _say(f"started {len(paths)} sidecars; making changes for {duration:.0f} s at ~{rate:.0f}/s\n")
        summary = _stream(demo, stream, duration, rate)
    finally:
        demo.stop_all()
        stream.close()
    print_summary(demo, cfg, stream, summary, time.monotonic() - started)
    return 0 if summary.get("ok") else 1


def _stream(demo: Demo, stream: ChangeStream, duration: float, rate: float) -> dict[str, Any]:
    end = time.monotonic() + duration
    next_show = time.monotonic() + 3
    bad_at = time.monotonic() + min(5.0, duration / 3)
    bad_done = False
    interval = 1.0 / rate
    while time.monotonic() < end:
        demo.check_alive()
        stream.step()
        if not bad_done and time.monotonic() >= bad_at:
            stream.bad_person()
            bad_done = True
        if time.monotonic() >= next_show:
            _show(demo, stream, duration - (end - time.monotonic()))
            next_show = time.monotonic() + 3
        time.sleep(interval)
    _say("\nchanges stopped; waiting for the last deliveries ...")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = demo.status()
        subs = status.get("subscriptions", [])
        waiting = [
            s
            for s in subs
            if s.get("refusal") is None
            and (
                (s.get("hub_lag") or {}).get("lag_records")
                or (s.get("subscriber_lag") or {}).get("lag_records")
            )
        ]
        if subs and not waiting:
            break
        time.sleep(1)
    time.sleep(2)
    _show(demo, stream, duration)
    return {"status": demo.status(), "ok": True}


def _show(demo: Demo, stream: ChangeStream, elapsed: float) -> None:
    status = {s["subscription"]: s for s in demo.status().get("subscriptions", [])}
    made = sum(stream.made.values())
    _say(f"-- t={elapsed:5.1f}s  changes made: {made}")
    _say(
        f"   {'subscription':<20}{'rows in inbox':>14}{'status':>8}{'hub lag':>10}{'sub lag':>10}{'lag s':>8}"
    )
    for sid in sorted(SINK_TABLES):
        s = status.get(sid, {})
        hub_lag = s.get("hub_lag") or {}
        sub_lag = s.get("subscriber_lag") or {}
        state = "REFUSED" if s.get("refusal") else (s.get("status") or "-")
        seconds = max(hub_lag.get("lag_seconds") or 0, sub_lag.get("lag_seconds") or 0)
        _say(
            f"   {sid:<20}{len(demo.inbox_rows(sid)):>14}{state:>8}{hub_lag.get('lag_records', '-')!s:>10}"
            f"{sub_lag.get('lag_records', '-')!s:>10}{seconds:>8.1f}"
        )
    for sid in SHOWN:
        rows = demo.inbox_rows(sid)
        if rows:
            newest = max(rows, key=lambda r: r.get("_xhub_applied_at") or "")
            shown = {k: v for k, v in newest.items() if not k.startswith("_xhub") and k != "xhub_key"}
            _say(f"   newest in {sid}: {json.dumps(shown, ensure_ascii=False)}")
