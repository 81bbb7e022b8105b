"""``xhub lag``, ``xhub report`` and ``xhub transactions``: the operator commands (``hub.cli`` adds them
via ``add_parsers``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hub.governance.overdue import OverdueRequests
from hub.monitor.board import LagBoard, SubscriptionLag, status_counts
from hub.monitor.lag_path import HubFigures
from hub.monitor.lag_text import format_lag_table, format_path
from hub.monitor.path import PathState
from hub.monitor.status import Rules, Status

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir
    from hub.monitor.federated_path import LinkedPath
    from hub.monitor.upstream import UpstreamHubs

EXIT_NOT_ALL_OK = 3
"""Exit status of ``xhub lag`` (without --watch) when a subscription is not OK; 1 and 2 are errors."""


def add_parsers(subparsers: Any) -> None:
    """Add ``lag``, ``report`` and ``transactions`` to the ``xhub`` sub-command parsers."""
    p = subparsers.add_parser(
        "lag",
        help="lag of every subscription in records and seconds, with status (OK WARN STALL STOP REWIND)",
        description=(
            "One row per subscription: hub lag (source topic end offsets minus the hub's committed offsets), "
            "subscriber lag (delivery topic end offsets minus the subscriber sidecar's committed offsets), "
            "lag in seconds since the source commit of the oldest waiting event, and a status over a sliding "
            "window. Without --watch, takes --samples samples --interval seconds apart; with no longer "
            "history, 'not moving' is judged by the age of the waiting records. With --upstream, each "
            "subscription on a linked resource is followed hop by hop across the clusters (the upstream "
            "hub, the hub link, this hub, the subscriber), with the age of its oldest waiting change from "
            "the source commit. Exit status: 0 all OK, "
            f"{EXIT_NOT_ALL_OK} some subscription not OK, 1 config error, 2 Kafka or registry error."
        ),
    )
    p.add_argument("config_dir")
    p.add_argument("--hub", default=None, help="only this hub (default: every hub in hubs.yaml)")
    p.add_argument("--watch", action="store_true", help="refresh every --interval seconds until Ctrl-C")
    p.add_argument("--json", action="store_true", help="JSON (with --watch: one document per line)")
    p.add_argument(
        "--window",
        type=float,
        default=60.0,
        help="status window in seconds (default 60): no progress for longer is STOP",
    )
    p.add_argument(
        "--stall-after",
        type=float,
        default=None,
        help="seconds without progress before STALL (default: window / 4)",
    )
    p.add_argument("--samples", type=int, default=3, help="samples of a single run (default 3)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples (default 1)")
    p.add_argument(
        "--admin",
        default=None,
        metavar="URL",
        help="the hub's admin port, for backfill and restore progress and the hub's own figures of the lags "
        "this identity may not read (default: http://127.0.0.1:<admin_port of hubs.yaml>; when it does not "
        "answer, backfills are read from committed offsets, the restore is unknown and unread lags come "
        "from offsets)",
    )
    p.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="CONFIG_DIR",
        help="the config directory of an upstream hub (a district's, for a city config), read on its own "
        "cluster: the path of each linked subscription, hop by hop (repeat for three levels)",
    )
    p.set_defaults(func=_lag)

    p = subparsers.add_parser(
        "report",
        help="per department: share ratio, subscriptions served, records delivered, freshness, bad records",
    )
    p.add_argument("config_dir")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument(
        "--html",
        default=None,
        metavar="OUT.html",
        help="also write the report as one self-contained HTML page (charts as inline SVG) to this file",
    )
    p.add_argument(
        "--sample", type=int, default=1000, help="records per delivery topic for freshness (default 1000)"
    )
    p.set_defaults(func=_report)

    from hub.monitor.transactions import add_parser as add_transactions_parser

    add_transactions_parser(subparsers)


def _lag(args: argparse.Namespace) -> int:
    return lag_command(
        args.config_dir,
        args.hub,
        Rules(window=args.window, stall_after=args.stall_after),
        json_out=args.json,
        sampling=Sampling(watch=args.watch, samples=args.samples, interval=args.interval),
        admin=args.admin,
        upstream=args.upstream,
    )


def _report(args: argparse.Namespace) -> int:
    return report_command(args.config_dir, args.json, sample=args.sample, html=args.html)


@dataclass(frozen=True, slots=True)
class Sampling:
    """How often ``xhub lag`` measures, and for how long.

    Attributes:
        watch: refresh every ``interval`` seconds until interrupted (or ``refreshes`` times).
        samples: samples of a single run, ``interval`` seconds apart.
        interval: seconds between samples.
        refreshes: stop watching after this many refreshes (tests).
    """

    watch: bool = False
    samples: int = 3
    interval: float = 1.0
    refreshes: int | None = None


def lag_command(
    config_dir: str,
    hub: str | None,
    rules: Rules,
    *,
    json_out: bool = False,
    sampling: Sampling = Sampling(),
    out: IO[str] | None = None,
    admin: str | None = None,
    upstream: Sequence[str] = (),
) -> int:
    """``xhub lag``: print the lag and status of every subscription (of ``hub``, or of every hub).

    Under the table: backfills, the state store's restore, the owners' sidecar source backlogs and whether
    the whole path is drained (``hub.monitor.lag_path``); with ``upstream``, the path of each subscription
    on a linked resource across the clusters (``hub.monitor.federated_path``).

    Args:
        config_dir: the config directory.
        hub: only this hub; None for all.
        rules: the status window and thresholds.
        json_out: JSON instead of a table.
        sampling: a single run of a few samples, or watching.
        out: where to print (default stdout).
        admin: the hub's admin URL (backfill and restore progress); default from hubs.yaml.
        upstream: config directories of the upstream hubs (a district's), each read on its own cluster.

    Returns:
        0 when every subscription (and every hop of a linked path) is OK and no source backlog stalls
        (always 0 with ``watch``), :data:`EXIT_NOT_ALL_OK` otherwise.

    Raises:
        ConfigError: the config directory is invalid or names no such hub.
        LagUnavailable, RegistryUnavailable: Kafka or the registry did not answer.
    """
    from hub.audit.reader import open_decoder
    from hub.config import load_config
    from hub.monitor.lag import LagProbe, targets_of_config
    from hub.monitor.lag_path import PathSampler, sources_ok

    stream = out or sys.stdout
    interval, refreshes = sampling.interval, sampling.refreshes
    cfg = load_config(config_dir)
    targets = targets_of_config(cfg, hub)
    if not targets:
        print("no subscriptions" + (f" on hub {hub}" if hub else ""), file=stream)
        return 0
    requests = overdue_share_requests(cfg)
    with open_decoder(cfg, client_id="monitor-registry") as decoder, ExitStack() as stack:
        probe = LagProbe(cfg.hubs_file.kafka, decoder, client_id="lag")
        sampler = PathSampler(cfg, sorted({t.hub for t in targets}), rules, admin)
        federation = Federation.of(cfg, upstream, rules, stack) if upstream else None
        try:
            board = LagBoard(probe, rules)
            if not sampling.watch:
                rows, path = sample_path(board, sampler, targets, sampling, federation)
                _print(
                    rows,
                    rules,
                    json_out,
                    stream,
                    clear=False,
                    path=(path, sampler.figures),
                    requests=requests,
                    federation=federation,
                )
                ok = all(r.status is Status.OK for r in rows) and sources_ok(path)
                ok = ok and (federation is None or federation.ok())
                return 0 if ok else EXIT_NOT_ALL_OK
            done = 0
            clear = not json_out and stream.isatty()
            try:
                while refreshes is None or done < refreshes:
                    started = time.monotonic()
                    rows, path = refresh_path(board, sampler, targets, federation)
                    _print(
                        rows,
                        rules,
                        json_out,
                        stream,
                        clear=clear,
                        path=(path, sampler.figures),
                        requests=requests,
                        federation=federation,
                    )
                    done += 1
                    if refreshes is None or done < refreshes:
                        time.sleep(max(0.0, interval - (time.monotonic() - started)))
            except KeyboardInterrupt:
                pass
            return 0
        finally:
            probe.close()
            sampler.close()


def sample_path(
    board: LagBoard,
    sampler: Any,
    targets: Sequence[Any],
    sampling: Sampling,
    federation: Federation | None = None,
) -> tuple[list[SubscriptionLag], PathState]:
    """Like :func:`sample_board`, sampling the path beyond the lags too (its rates need the samples), and
    the upstream hops of linked subscriptions (their status windows too)."""
    rows: list[SubscriptionLag] = []
    path = PathState()
    for i in range(max(1, sampling.samples)):
        if i:
            time.sleep(sampling.interval)
        rows, path = refresh_path(board, sampler, targets, federation)
    return rows, path


def refresh_path(
    board: LagBoard, sampler: Any, targets: Sequence[Any], federation: Federation | None = None
) -> tuple[list[SubscriptionLag], PathState]:
    """One refresh of the lags, the path beyond them and the upstream hops.

    A lag this identity could not read takes the hub's own figure (records, age, status) where its admin
    port answered (``lag_path.with_hub_figures``): the rows returned, their status and the exit status
    follow it.
    """
    from hub.monitor.lag_path import with_hub_figures

    rows = board.refresh(targets)
    path = sampler.sample(rows)
    rows = with_hub_figures(rows, sampler.figures)
    if federation is not None:
        federation.refresh(rows)
    return rows, path


@dataclass(slots=True)
class Federation:
    """``xhub lag --upstream``: the upstream hubs, and the linked paths of the last refresh."""

    upstream: UpstreamHubs
    upstream_rows: dict[tuple[str, str], SubscriptionLag]
    paths: list[LinkedPath]

    @classmethod
    def of(cls, cfg: ConfigDir, upstream: Sequence[str], rules: Rules, stack: ExitStack) -> Federation:
        from hub.config import load_config
        from hub.monitor.upstream import UpstreamHubs

        return cls(UpstreamHubs(cfg, [load_config(d) for d in upstream], rules, stack), {}, [])

    def refresh(self, rows: Sequence[SubscriptionLag]) -> None:
        from hub.monitor.federated_path import linked_paths

        self.upstream_rows = self.upstream.refresh()
        self.paths = linked_paths(rows, self.upstream_rows, self.upstream.links)

    def ok(self) -> bool:
        return all(p.status is Status.OK for p in self.paths)

    def to_json(self) -> dict[str, Any]:
        return {
            "federation": [p.to_json() for p in self.paths],
            "upstream_subscriptions": [r.to_json() for _, r in sorted(self.upstream_rows.items())],
        }


def lag_document(
    rows: Sequence[SubscriptionLag],
    rules: Rules,
    path: tuple[PathState, Sequence[HubFigures]] | None = None,
) -> dict[str, Any]:
    """The JSON of ``xhub lag --json`` (with ``path``: backfills, restore, sources, drained)."""
    doc = {
        "generated_ms": time.time_ns() // 1_000_000,
        "window_seconds": rules.window,
        "stall_after_seconds": rules.stall_seconds,
        "status_counts": dict(status_counts(rows)),
        "subscriptions": [r.to_json() for r in rows],
    }
    if path is not None:
        add_path(doc, *path)
    return doc


def add_path(doc: dict[str, Any], state: PathState, figures: Sequence[HubFigures]) -> None:
    """Put the path into a ``xhub lag --json`` document: hub-wide under "path", the rest per subscription."""
    from hub.monitor.lag_path import path_document, subscription_path

    doc["path"] = path_document(state, figures)
    for item in doc["subscriptions"]:
        item.update(subscription_path(state, item["subscription"]))


def overdue_share_requests(cfg: ConfigDir) -> OverdueRequests:
    """The config's share requests pending past their answer day, dated by the applied snapshots."""
    from kafka.errors import KafkaError

    from hub.governance.applied import applied_request_dates
    from hub.governance.overdue import overdue_of_config

    try:
        filed = applied_request_dates(cfg)
    except KafkaError:
        filed = {}  # the lag read fails on its own with a clear error; the config's own dates serve here
    return overdue_of_config(cfg, filed=filed)


def _print(
    rows: Sequence[SubscriptionLag],
    rules: Rules,
    json_out: bool,
    stream: IO[str],
    *,
    clear: bool,
    path: tuple[PathState, Sequence[HubFigures]] | None = None,
    requests: OverdueRequests | None = None,
    federation: Federation | None = None,
) -> None:
    if json_out:
        doc = lag_document(rows, rules, path)
        if requests is not None:
            doc["share_requests"] = requests.to_json()
        if federation is not None:
            doc.update(federation.to_json())
        print(json.dumps(doc, ensure_ascii=False), file=stream, flush=True)
        return
    if clear:
        stream.write("\x1b[H\x1b[2J")
    counts = ", ".join(f"{n} {s}" for s, n in status_counts(rows).items() if n)
    stamp = time.strftime("%H:%M:%S")
    print(f"{stamp}  {len(rows)} subscriptions: {counts}  (window {rules.window:g}s)", file=stream)
    print(format_lag_table(rows), file=stream, flush=True)
    if path is not None:
        print(format_path(*path), file=stream, flush=True)
    if federation is not None:
        from hub.monitor.federated_path import format_linked_paths

        print(
            format_linked_paths(federation.paths) or "\nLINKED   no subscription on a linked resource",
            file=stream,
            flush=True,
        )
    line = requests.summary_line() if requests is not None else None
    if line:
        print(line, file=stream, flush=True)


def report_command(
    config_dir: str,
    json_out: bool,
    *,
    sample: int = 1000,
    out: IO[str] | None = None,
    html: str | None = None,
) -> int:
    """``xhub report``: how well each department shares (see ``hub.monitor.report``).

    ``html``: also write the page (``hub.monitor.report_html``) to this path; its path is printed last.

    Raises:
        ConfigError: the config directory is invalid.
        LagUnavailable, RegistryUnavailable: Kafka or the registry did not answer.
    """
    from hub.audit.reader import open_decoder
    from hub.config import load_config
    from hub.governance.applied import applied_request_dates
    from hub.monitor.report import build_report, format_report

    stream = out or sys.stdout
    cfg = load_config(config_dir)
    with open_decoder(cfg, client_id="monitor-registry") as decoder:
        report = build_report(cfg, decoder, sample=sample, filed=applied_request_dates(cfg))
    if html is not None:
        from hub.monitor.report_html import render_html

        page = Path(html)
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(render_html(report, source=config_dir), encoding="utf-8")
    if json_out:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2), file=stream)
    else:
        print(format_report(report), file=stream)
    if html is not None:
        print(f"report page: {Path(html).resolve()}", file=sys.stderr if json_out else stream)
    return 0
