"""``xhub requests`` (share requests and their answer deadlines) and ``xhub codeowners`` (who reviews
which file of a config); ``hub.cli`` adds them."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from typing import IO, Any

from hub.config.loader import ConfigDir
from hub.core.columns import pad, width
from hub.governance.requests import Party, RequestList, ShareRequest, share_requests

EXIT_UNKNOWN_DEPARTMENT = 2
"""Exit status when --owner or --subscriber names no department of the config (1: config errors)."""


def add_parsers(subparsers: Any) -> None:
    """Add ``requests`` and ``codeowners`` to the ``xhub`` sub-command parsers (``add_subparsers()``)."""
    p = subparsers.add_parser(
        "requests",
        help="share requests (共享申请) to conditional resources: answered? within the working-day deadline?",
        description=(
            "One row per active subscription to a conditional resource: a request to the owning department, "
            "which answers in grants/<owner>/. The answer is due on the N-th working day after the request "
            "was filed (the date xhub apply stamped when it first published it, read back from the cluster; "
            "else the subscription's requested_at; N = answer_within_working_days in hubs.yaml, "
            "default 10 by 国发〔2016〕51号), on the official calendar (chinese-calendar: holidays and "
            "make-up working days 调休). A year the calendar does not cover is counted Monday to Friday and "
            "the output says so. Exit status: 0, also with overdue requests; 1 config errors."
        ),
    )
    p.add_argument("config_dir")
    p.add_argument("--owner", default=None, help="only requests to this department (id)")
    p.add_argument("--subscriber", default=None, help="only requests from this department (id)")
    p.add_argument("--overdue", action="store_true", help="only pending requests past their due day")
    p.add_argument("--json", action="store_true", help="machine-readable list")
    p.add_argument(
        "--offline",
        action="store_true",
        help="do not read the applied snapshots from Kafka (only dates the config itself states)",
    )
    p.add_argument(
        "--today",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="judge pending requests as of this day (default: today in the hubs.yaml timezone)",
    )
    p.set_defaults(func=_requests)

    p = subparsers.add_parser(
        "codeowners",
        help="print a CODEOWNERS file (GitHub/GitLab) giving each department's files to its team",
        description=(
            "subscriptions/<dept>/ to the subscriber's team, grants/<owner>/ and the owner's catalog files "
            "to the owner's team (departments' `team`), hubs.yaml and departments/ to hubs.yaml's "
            "platform_team. Paths are prefixed with where the config folder sits in its git repository "
            "(--prefix to set it). Warnings (a file mixing departments, a department without a team) go "
            "to stderr. "
            "Exit status: 0; 1 config errors or no team named."
        ),
    )
    p.add_argument("config_dir")
    p.add_argument(
        "--prefix",
        default=None,
        help="the config folder's path in the repository, e.g. deploy/demo/config (default: from .git)",
    )
    p.set_defaults(func=_codeowners)


def _requests(args: argparse.Namespace) -> int:
    from hub.config import load_config

    cfg = load_config(args.config_dir)  # the one validation path: a config error is one line per problem
    for flag, dept in (("--owner", args.owner), ("--subscriber", args.subscriber)):
        if dept is not None and dept not in cfg.departments:
            known = ", ".join(sorted(cfg.departments))
            print(f'error: {flag} "{dept}" is no department of {args.config_dir} ({known})', file=sys.stderr)
            return EXIT_UNKNOWN_DEPARTMENT
    filed = {} if args.offline else _filed_dates(cfg)
    listing = share_requests(cfg, args.today, filed=filed).select(
        owner=args.owner, subscriber=args.subscriber, overdue=args.overdue
    )
    if args.json:
        print(json.dumps(listing.to_json(), ensure_ascii=False, indent=2))
    else:
        write_table(listing, sys.stdout)
    return 0


def _codeowners(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hub.config import load_config
    from hub.governance.codeowners import code_owners, repository_prefix

    cfg = load_config(args.config_dir)
    prefix = args.prefix if args.prefix is not None else repository_prefix(Path(args.config_dir))
    try:
        owners = code_owners(cfg, prefix)
    except ValueError as exc:
        print(f"error: {args.config_dir}: {exc}", file=sys.stderr)
        return 1
    for warning in owners.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(owners.text(prefix))
    return 0


def _filed_dates(cfg: ConfigDir) -> dict[str, datetime]:
    """The dates apply stamped; without a reachable cluster, say so and go on with the config's own."""
    from kafka.errors import KafkaError

    from hub.governance.applied import applied_request_dates

    try:
        return applied_request_dates(cfg)
    except KafkaError as exc:
        print(
            f"warning: the applied snapshots could not be read ({type(exc).__name__}): only the request "
            "dates the config states are used (--offline skips this)",
            file=sys.stderr,
        )
        return {}


_HEADERS = (
    "subscription",
    "subscriber",
    "owner",
    "resource",
    "requested",
    "due",
    "state",
    "answered",
    "days",
)


def write_table(listing: RequestList, out: IO[str]) -> None:
    """The requests as a terminal table, their notes below it, then the rule and any calendar warning."""
    rows = [_row(r) for r in listing.requests]
    widths = [max([width(h), *(width(row[i]) for row in rows)]) for i, h in enumerate(_HEADERS)]
    for cells in (_HEADERS, *rows):
        out.write("  ".join(pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n")
    if not rows:
        out.write("(no share request)\n")
    for r in listing.requests:
        for note in r.notes:
            out.write(f"note: {r.subscription}: {note}\n")
    c = listing.counts()
    out.write(
        f"{c['requests']} request(s): {c['pending']} pending ({c['overdue']} overdue), "
        f"{c['approved']} approved, {c['refused']} refused, {c['answered_late']} answered late; "
        f"an answer is due within {listing.working_days} working days (official calendar), "
        f"judged on {listing.today} ({listing.timezone})\n"
    )
    for warning in listing.warnings:
        out.write(f"warning: {warning}\n")


def _row(r: ShareRequest) -> tuple[str, ...]:
    requested = r.requested_on.isoformat() if r.requested_on else "unknown"
    answered = r.answered_on.isoformat() if r.answered_on else "-"
    approx = "~" if r.uncovered_years else ""  # a figure counted Monday to Friday somewhere
    return (
        r.subscription,
        _short(r.subscriber),
        _short(r.owner),
        r.resource,
        requested,
        f"{approx}{r.due_on}" if r.due_on else "-",
        r.state.upper() if r.late else r.state,
        answered,
        approx + _days(r),
    )


def _days(r: ShareRequest) -> str:
    if r.state != "pending":
        taken = "" if r.working_days_taken is None else f"took {r.working_days_taken}"
        return f"{taken} LATE".strip() if r.late else taken or "-"
    if r.working_days_left is None:
        return "-"
    if r.late:  # past the due day; 0 working days past it on a weekend or holiday right after
        return f"overdue by {-r.working_days_left}" if r.working_days_left < 0 else "overdue"
    return f"{r.working_days_left} left"


def _short(party: Party) -> str:
    """The department's name without a parenthesised gloss (``浦东公安分局 (public security)``)."""
    name = party.name.split(" (", 1)[0].strip() or party.id
    return f"{name} [{party.id}]" if name != party.id else name
