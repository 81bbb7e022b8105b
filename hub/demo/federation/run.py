"""`xhub demo --federation`: 一处失信、处处受限 across districts, through the city hub.

1. start three Kafka clusters (Pudong, Xuhui, the city; secure unless --plaintext), write each hub's config
   (the city's with copies of the districts' published terms), a certificate per party, `xhub apply` each;
2. start the three hubs, each court's sidecar on its own database, the two links (district -> city) and the
   credit centre's sidecar, each process as its own party;
3. make changes at both courts for ``duration`` seconds while showing what reaches the city; midway
   SIGKILL the Pudong link once and start it again;
4. wait until every hop is drained, print the credit centre's merged table with each row's provenance,
   check each point of issue 17 (exactly once, policy at each level, provenance and trace, lag per hop,
   the link's kill) and stop everything it started.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hub.core import names
from hub.core.errors import FatalError
from hub.demo.federation.courts import Courts
from hub.demo.federation.harness import DEFAULT_PORT_BASE, Federation
from hub.demo.federation.parties import CENTRE_NAME, CITY, DISTRICTS, district_of_case
from hub.demo.federation.summary import (
    Check,
    exactly_once,
    lag_per_hop,
    link_positions,
    observe,
    policy,
    print_table,
    provenance,
    read_topics,
    report,
    terms_current,
    traces,
)
from hub.demo.federation.table import SubscriberTable
from hub.demo.harness import say

DRAIN_TIMEOUT_S = 180.0  # after the last change, until every hop has carried it
SEED_PER_COURT = 20


@dataclass(frozen=True)
class FederationOptions:
    duration: float = 60.0  # seconds of changes
    rate: float = 10.0  # changes per second, over both courts
    port_base: int = DEFAULT_PORT_BASE
    plaintext: bool = False
    kill_link: bool = True  # SIGKILL the Pudong link once, midway
    workdir: Path | None = None


@dataclass
class FederationResult:
    checks: list[Check]
    passed: bool
    wall_s: float


def run_federation_demo(options: FederationOptions, *, repo: Path | None = None) -> FederationResult:
    repo = repo or Path(__file__).resolve().parents[3]
    fed = Federation(
        repo,
        options.workdir or repo / "deploy" / "demo" / ".run-federation",
        port_base=options.port_base,
        plaintext=options.plaintext,
    )
    started = time.monotonic()
    say("== exchange-hub federated demo: 一处失信、处处受限, district -> city ==")
    fed.prepare()
    courts = Courts(fed.workdir / "db")
    checks: list[Check] = []
    try:
        table = _start(fed, courts, options)
        say(f"making changes at both courts for {options.duration:.0f} s at ~{options.rate:.0f}/s\n")
        killed = _stream(fed, courts, table, options)
        say("\nchanges stopped; waiting until every hop has carried the last of them ...")
        drained = _drain(fed, table)
        checks += _check(fed, courts, table, kill_asked=options.kill_link, killed=killed)
        if not drained:
            checks.append(Check(f"drained within {DRAIN_TIMEOUT_S:.0f} s of the last change", False))
    finally:
        say("\nstopping the hubs, sidecars and clusters ...")
        courts.close()
        fed.stop()
    left = fed.clusters.running() + [n for n, p in fed.processes.processes.items() if p.poll() is None]
    checks.append(Check(f"clean shutdown: nothing it started still runs {left or ''}".rstrip(), not left))
    wall = time.monotonic() - started
    passed = report(checks, wall, str(fed.workdir))
    return FederationResult(checks, passed, wall)


def _start(fed: Federation, courts: Courts, options: FederationOptions) -> SubscriberTable:
    """Clusters, configs applied, registries, hubs, and the sidecars of the courts, the links and the
    credit centre, until the courts' lists as they stood reached the centre; its table."""
    clusters = ", ".join(f"{c.name} {c.bootstrap}" for c in fed.clusters.members.values())
    security = "plaintext" if options.plaintext else "mutual TLS, ACLs"
    say(f"starting three Kafka clusters ({security}): {clusters}")
    fed.start_clusters()
    if not options.plaintext:
        say(f"identities: a certificate per party from one CA ({fed.clusters.credentials})")
    fed.apply_all()
    fed.start_registries()
    fed.start_hubs()
    say("hubs running: " + ", ".join(f"{h} http://127.0.0.1:{p}/" for h, p in fed.admin_ports.items()))
    courts.seed_lists(SEED_PER_COURT)
    fed.start_courts({d.hub: courts.database(d) for d in DISTRICTS})
    for district in DISTRICTS:
        fed.start_link(district)
    table = fed.start_centre()
    say(
        f"sidecars: {', '.join(d.court for d in DISTRICTS)} (capture), links pudong and xuhui "
        f"(district -> city), {CENTRE_NAME} (its table: {table.db})"
    )
    _wait_for_snapshot(fed, table)
    return table


def _check(
    fed: Federation, courts: Courts, table: SubscriberTable, *, kill_asked: bool, killed: int | None
) -> list[Check]:
    """What reached the city, shown and checked (``killed``: the pid of the link SIGKILLed, if it was)."""
    seen = observe(fed, table)
    print_table(seen)
    clear_ids = {
        str(r["case_no"]): clear
        for r in seen.rows
        if (clear := courts.clear_id(district_of_case(str(r["xhub_key"])), str(r["case_no"])))
    }
    say("\n== xhub lag CITY --upstream PUDONG --upstream XUHUI (as the super user) ==")
    say(fed.lag_report(CITY))
    say("\n== audit trace of one case per district, at the city, back to its court ==")
    checks = exactly_once(seen) + link_positions(fed, seen)
    if kill_asked:
        checks.append(
            Check(
                f"fault: the pudong link was SIGKILLed mid-stream (pid {killed}) and restarted; "
                "exactly once held across it (above)",
                killed is not None and all(c.ok for c in checks),
            )
        )
    checks += policy(fed, seen, clear_ids)
    checks.append(terms_current(fed.copied_terms(), seen))
    checks.append(provenance(seen))
    checks += traces(fed, seen)
    checks.append(lag_per_hop(fed))
    return checks


def _stream(
    fed: Federation, courts: Courts, table: SubscriberTable, options: FederationOptions
) -> int | None:
    """Changes at the courts for ``options.duration`` s; midway the Pudong link is SIGKILLed and started
    again. Returns the killed pid."""
    started = time.monotonic()
    end = started + options.duration
    kill_at = started + options.duration * 0.4
    killed: int | None = None
    next_show = started + 3
    interval = 1.0 / options.rate
    while time.monotonic() < end:
        fed.processes.check_alive()
        courts.step()
        if options.kill_link and killed is None and time.monotonic() >= kill_at:
            pudong = DISTRICTS[0]
            killed = fed.kill_link(pudong)
            say(f">> SIGKILL of the pudong link (pid {killed}) mid-stream; starting it again")
            fed.start_link(pudong, name="link-pudong-restarted")
        if time.monotonic() >= next_show:
            _show(fed, courts, table, time.monotonic() - started)
            next_show = time.monotonic() + 3
        time.sleep(interval)
    return killed


def _wait_for_snapshot(fed: Federation, table: SubscriberTable, timeout_s: float = 180) -> None:
    """Until the courts' lists as they stood (their sidecars' snapshot) reached the credit centre: then
    every process of the path runs, and the stream that follows is seen arriving."""
    started = time.monotonic()
    listed = SEED_PER_COURT * len(DISTRICTS)
    while len(table.receipts()) < listed:
        fed.processes.check_alive()
        if time.monotonic() - started > timeout_s:
            raise FatalError(
                f"the courts' {listed} listed debtors did not reach the credit centre within "
                f"{timeout_s:.0f} s (see {fed.workdir / 'logs'})"
            )
        time.sleep(0.5)
    say(
        f"the courts' lists as they stood ({listed} debtors, snapshot) reached the credit centre "
        f"{time.monotonic() - started:.1f} s after the sidecars started"
    )


def _show(fed: Federation, courts: Courts, table: SubscriberTable, elapsed: float) -> None:
    applied = applied_by_district(table)
    city = fed.status(CITY)
    links = {
        s.get("department"): s
        for s in (city.get("path") or {}).get("sources", [])
        if s.get("kind") == "hub_link"
    }
    parts = []
    for d in DISTRICTS:
        waiting = (links.get(d.hub) or {}).get("rows")
        parts.append(
            f"{d.hub}: {courts.changes(d)} changes, link waiting {'-' if waiting is None else waiting}, "
            f"at the centre {applied.get(d.hub, 0)}"
        )
    say(f"-- t={elapsed:5.1f}s  " + " | ".join(parts))


def applied_by_district(table: SubscriberTable) -> Counter[str]:
    """Changes the credit centre applied so far, per district."""
    return Counter(district_of_case(key).hub for key, _seq in table.receipts())


def _drain(fed: Federation, table: SubscriberTable) -> bool:
    """Wait until the status pages show nothing waiting on any hop (the courts' change logs included)
    and the credit centre applied as many changes as the courts published."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        fed.processes.check_alive()
        if lag_per_hop(fed).ok:
            published = sum(
                len(read_topics(fed, d.hub, [names.source_topic(d.court, d.resource)], quiet_s=1.0))
                for d in DISTRICTS
            )
            if len(table.receipts()) >= published:
                return True
        time.sleep(1)
    return False
