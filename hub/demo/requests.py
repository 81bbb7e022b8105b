"""The demo's share request (共享申请): the transport commission's request for psb's population base.

It starts pending (no grant in grants/psb/), with a due day on the official calendar; midway the owner
answers (the demo writes psb's grant and applies it, as psb's team would after review); the hub installs
the grant live and backfill delivers the current state to transport; the summary says how many working
days the answer took. The demo ends with the 考核 report page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from kafka.errors import KafkaError

from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.core.errors import FatalError
from hub.demo.harness import Demo, say
from hub.governance.applied import applied_request_dates
from hub.governance.requests import ShareRequest, share_requests

REQUEST = "transport-persons"
OWNER = "psb"
GRANT_FILE = "transport.yaml"  # grants/psb/transport.yaml: psb's answer, in psb's folder


@dataclass
class AnswerSeen:
    """What the hub had done with the request when psb answered: refused it, delivered nothing."""

    refused_before: int = 0
    rows_before: int = 0
    answered_at: datetime | None = None


def the_request(cfg: ConfigDir) -> ShareRequest | None:
    """The demo's request as `xhub requests` shows it (dated by the applied snapshot)."""
    listing = share_requests(cfg, filed=applied_request_dates(cfg))
    return next((r for r in listing.requests if r.subscription == REQUEST), None)


def show_request(cfg: ConfigDir) -> None:
    """One line on the request: who asks whom for what, filed when, due when, where it stands."""
    r = the_request(cfg)
    if r is None:
        say(f"share request {REQUEST}: not in the config")
        return
    if r.state == "pending":
        if r.working_days_left is None:
            when = "no filing date"
        elif r.late:
            when = f"OVERDUE by {max(0, -r.working_days_left)} working day(s)"
        else:
            when = f"{r.working_days_left} working day(s) left"
        stands = f"PENDING, {when}"
    else:
        late = "late" if r.late else "on time"
        stands = f"{r.state} on {r.answered_on} in {r.working_days_taken} working days ({late})"
    say(
        f"share request {r.subscription}: {r.subscriber.name} asks {r.owner.name} for {r.resource} "
        f"({r.resource_name}); filed {r.requested_on}, answer due {r.due_on} (10 working days, official "
        f"calendar with holidays and 调休): {stands}"
    )


def answer_request(demo: Demo, seen: AnswerSeen, *, force: bool = False) -> bool:
    """psb approves the request: its grant is written to grants/psb/ and applied; the hub follows live.

    Only once the hub has refused some of psb's records to transport (the sidecars may still be starting
    on a busy machine), unless ``force``; returns whether it answered.
    """
    from hub.provision.session import provision_session

    status = {s["subscription"]: s for s in demo.status().get("subscriptions", [])}
    refused = int(status.get(REQUEST, {}).get("refused", 0))
    if refused == 0 and not force:
        return False
    config = demo.workdir / "config"
    zone = ZoneInfo(load_config(config).hubs_file.timezone)
    now = datetime.now(zone).replace(microsecond=0)
    seen.refused_before = refused
    seen.rows_before = len(demo.inbox_rows(REQUEST))
    seen.answered_at = now
    _write_grant(config / "grants" / OWNER / GRANT_FILE, now)
    from hub.provision.credentials import APPLY_ROLE

    try:
        with demo.as_party(APPLY_ROLE):  # the apply role, under the ACLs the first apply made
            cfg = load_config(config)
            with provision_session(cfg) as session:
                session.apply()
    except KafkaError as exc:
        raise FatalError(
            f"applying {OWNER}'s answer to {REQUEST}: Kafka at {cfg.hubs_file.kafka.bootstrap_servers} "
            f"answered {type(exc).__name__}: {exc}"
        ) from exc
    say(
        f"\n>> {OWNER} answers {REQUEST}: approved (grants/{OWNER}/{GRANT_FILE}, applied); until now the hub "
        f"refused {seen.refused_before} person records to transport (no_grant); backfill now sends it the "
        "current state"
    )
    show_request(cfg)
    say("")
    return True


def _write_grant(path: Path, now: datetime) -> None:
    grant = {
        "subscription": REQUEST,
        "resource": "PD-POP-0001",
        "decision": "approved",
        "approver": "浦东公安分局人口管理办公室",
        "reference": "浦公共享〔2026〕52号",
        "decided_at": now.isoformat(),
        "valid_until": (now + timedelta(days=365)).isoformat(),
        # every requested field, under the masks transport asked for (pseudonym, name, phone)
    }
    body = (
        "# psb's answer to the transport commission's request (written by the demo midway, then applied).\n"
        + yaml.safe_dump({"grants": [grant]}, allow_unicode=True, sort_keys=False)
    )
    path.write_text(body, encoding="utf-8")


def write_report(demo: Demo) -> Path:
    """The 考核 report of the run as a page (``xhub report --html``); returns its path."""
    from hub.audit.reader import open_decoder
    from hub.monitor.report import build_report
    from hub.monitor.report_html import render_html

    config = demo.workdir / "config"
    cfg = load_config(config)
    with open_decoder(cfg, client_id="monitor-registry") as decoder:
        report = build_report(cfg, decoder, sample=500, filed=applied_request_dates(cfg))
    page = demo.workdir / "report.html"
    page.write_text(render_html(report, source=str(config)), encoding="utf-8")
    ranked = sorted((d for d in report.departments if d.rank is not None), key=lambda d: d.rank or 0)
    say("考核 ranking: " + ", ".join(f"{d.rank}. {d.department} {(d.score or 0) * 100:.0f}" for d in ranked))
    delivered = sum(d.records_delivered for d in report.departments)
    say(f"考核 report: {delivered} deliveries counted from {report.audit_entries} audit entries")
    if not delivered or report.undecodable_audit_entries:
        raise FatalError(
            f"the 考核 report counted {delivered} deliveries and "
            f"{report.undecodable_audit_entries} undecodable audit entries: the page would mislead"
        )
    return page
