"""`xhub demo`: the main job on one command.

A court's dishonest-debtor list and the market regulator's register reach tax, housing, transport and a
sub-district office within a second, each seeing only what it is entitled to (一处失信、处处受限):

1. copy deploy/demo/config to a scratch folder (free ports, the given Kafka), clear the previous run's topics;
2. create the departments' SQLite databases and seed them (Faker zh_CN: valid ID numbers, credit codes);
3. `xhub apply`, start the hub, install and start one sidecar per department;
4. make a stream of changes in the source databases while showing the rows arriving downstream; the
   transport commission's share request to psb is pending (due day on the official calendar) until,
   midway, psb answers it (its grant written and applied): backfill sends transport the current state;
5. print a summary (changes, deliveries, latency, refusals, dead letters, the request answered in N working
   days), stop everything it started, and write the 考核 report page (its path printed last).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub.core.errors import FatalError
from hub.demo.harness import HUB, SINK_TABLES, SOURCE_DEPARTMENTS, Demo, say
from hub.demo.requests import AnswerSeen, answer_request, show_request, write_report
from hub.demo.scenario import ChangeStream, DepartmentDbs
from hub.demo.summary import print_summary
from hub.provision.credentials import APPLY_ROLE

ANSWER_GRACE_S = 60.0  # the stream goes on this much longer while the hub has refused nothing to show yet
SHOWN = ("housing-debtors", "lujiazui-debtors", "housing-persons")


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
    say("== exchange-hub demo: 一处失信、处处受限 (discredited in one place, restricted everywhere) ==")
    cfg = demo.prepare()
    say(
        f"config: {len(cfg.departments)} departments, {len(cfg.resources)} resources, "
        f"{len(cfg.subscriptions)} subscriptions; Kafka at {bootstrap}"
    )
    demo.clear_previous_run(cfg)
    dbs = DepartmentDbs(demo.workdir / "db")
    dbs.create()
    stream = ChangeStream(dbs)
    stream.seed_initial()
    say("seeded the departments' databases (Faker zh_CN; valid ID numbers and credit codes)")
    from hub.provision.session import provision_session

    with provision_session(cfg) as session:
        _plan, result = session.apply()
    say(f"xhub apply: {len(result.done)} changes (topics, schemas, ACLs, config)")
    show_request(cfg)
    seen = AnswerSeen()
    paths = demo.write_connector_configs()
    try:
        cfg = demo.start_registry()
        demo.start(
            "hub",
            ["-m", "hub.cli", "run", str(demo.workdir / "config"), "--hub", HUB],
            party=demo.party_names[HUB],
        )
        demo.wait_ready()
        say(
            f"hub {HUB} running: status page http://127.0.0.1:{demo.admin_port}/  "
            f"registry {cfg.hubs_file.registry.url}"
        )
        if demo.credentials is not None:
            say(
                f"each party connects as itself: {demo.party_names[HUB]}, xhub-registry, "
                f"{', '.join(demo.party_names[d] for d in sorted(paths))}; later applies as {APPLY_ROLE}"
            )
        for dept in SOURCE_DEPARTMENTS:
            out = subprocess.run(
                [sys.executable, "-m", "connectors", "install", "--config", str(paths[dept])],
                capture_output=True,
                text=True,
                env=demo.party_env(demo.party_names[dept]),
                check=False,
            )
            if out.returncode != 0:
                raise FatalError(
                    f"connector install for {dept} failed: {out.stderr.strip() or out.stdout.strip()}"
                )
            say(f"installed capture for {dept}: {out.stdout.strip().splitlines()[-1]}")
        for dept, path in paths.items():
            demo.start(
                f"sidecar-{dept}",
                ["-m", "connectors", "run", "--config", str(path)],
                party=demo.party_names[dept],
            )
        say(f"started {len(paths)} sidecars; making changes for {duration:.0f} s at ~{rate:.0f}/s\n")
        summary = _stream(
            demo, stream, duration, rate, midway=lambda force: answer_request(demo, seen, force=force)
        )
        summary["answer"] = seen
        demo.stop_all(keep=("registry",))  # the summary and the report decode through it
        print_summary(demo, cfg, stream, summary, time.monotonic() - started)
        page = write_report(demo)
        say(f"考核 report (sharing assessment) written: {page}")
    finally:
        demo.stop_all()
        stream.close()
    return 0 if summary.get("ok") else 1


def _stream(
    demo: Demo, stream: ChangeStream, duration: float, rate: float, *, midway: Callable[[bool], bool]
) -> dict[str, Any]:
    """Make changes for ``duration`` seconds; from midway on, ``midway`` answers the share request (it
    declines while there is nothing to show yet). On a slow machine the changes go on, up to
    ``ANSWER_GRACE_S`` longer, until it answers; then it is forced."""
    started = time.monotonic()
    end = started + duration
    last_call = end + ANSWER_GRACE_S
    answer_at = time.monotonic() + duration / 2
    answered = False
    next_show = time.monotonic() + 3
    bad_at = time.monotonic() + min(5.0, duration / 3)
    bad_done = False
    interval = 1.0 / rate
    while time.monotonic() < end or (not answered and time.monotonic() < last_call):
        demo.check_alive()
        stream.step()
        if not bad_done and time.monotonic() >= bad_at:
            stream.bad_person()
            bad_done = True
        if not answered and time.monotonic() >= answer_at:
            answered = midway(False)  # the owner answers the pending share request
        if time.monotonic() >= next_show:
            _show(demo, stream, time.monotonic() - started)
            next_show = time.monotonic() + 3
        time.sleep(interval)
    if not answered:
        midway(True)
    say("\nchanges stopped; waiting for the last deliveries ...")
    stopped_ms = time.time_ns() // 1_000_000
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = demo.status()
        if (status.get("refreshed_ms") or 0) < stopped_ms:  # a busy hub measures less often: wait for one
            time.sleep(1)
            continue
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
    _show(demo, stream, time.monotonic() - started)
    return {"status": demo.status(), "ok": True}


def _show(demo: Demo, stream: ChangeStream, elapsed: float) -> None:
    status = {s["subscription"]: s for s in demo.status().get("subscriptions", [])}
    made = sum(stream.made.values())
    say(f"-- t={elapsed:5.1f}s  changes made: {made}")
    say(
        f"   {'subscription':<20}{'rows in inbox':>14}{'status':>8}{'hub lag':>10}{'sub lag':>10}{'lag s':>8}"
    )
    for sid in sorted(SINK_TABLES):
        s = status.get(sid, {})
        hub_lag = s.get("hub_lag") or {}
        sub_lag = s.get("subscriber_lag") or {}
        state = "REFUSED" if s.get("refusal") else (s.get("status") or "-")
        seconds = max(hub_lag.get("lag_seconds") or 0, sub_lag.get("lag_seconds") or 0)
        say(
            f"   {sid:<20}{len(demo.inbox_rows(sid)):>14}{state:>8}{hub_lag.get('lag_records', '-')!s:>10}"
            f"{sub_lag.get('lag_records', '-')!s:>10}{seconds:>8.1f}"
        )
    for sid in SHOWN:
        rows = demo.inbox_rows(sid)
        if rows:
            newest = max(rows, key=lambda r: r.get("_xhub_applied_at") or "")
            shown = {k: v for k, v in newest.items() if not k.startswith("_xhub") and k != "xhub_key"}
            say(f"   newest in {sid}: {json.dumps(shown, ensure_ascii=False)}")
