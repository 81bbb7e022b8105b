"""``xhub audit verify``, ``show``, ``checkpoint``, ``trace`` (``hub.cli`` adds them: ``add_parsers``)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hub.audit.chain import check_key, is_worker_chain
from hub.audit.checkpoint import ChainHead, Heads, read_checkpoints, write_checkpoint
from hub.audit.reader import Decoder, ReadSpan, end_offset, open_decoder, read_anchors, read_records
from hub.audit.show import Criteria, build_query, format_row, summarize, to_json
from hub.audit.verify import Expectations, VerifyReport, verify_entries
from hub.audit.verify_metrics import write_verify_metrics

if TYPE_CHECKING:
    from hub.config.loader import ConfigDir
    from hub.core.kafka_settings import KafkaSettings

EXIT_BROKEN = 3
"""Exit status of ``xhub audit verify`` when a chain is broken; 1 and 2 are config and runtime errors."""


def add_parsers(subparsers: Any) -> None:
    """Add ``audit verify``, ``show`` and ``checkpoint`` to the ``xhub`` sub-command parsers."""
    audit = subparsers.add_parser(
        "audit", help="the disclosure audit (可溯): verify its chains, ask it questions"
    )
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="AUDIT_COMMAND")

    p = commands.add_parser(
        "verify",
        help="check every hash chain of a hub's audit; say where it breaks and why",
        description=(
            "Reads the whole audit topic of the hub and checks each writer's chain: its name one of the "
            "hub's workers, seq gap-free from 1, each prev_hash the previous entry's hash, each hash the "
            "HMAC recomputed with the hub's audit key (audit_key_env / audit_key_file in hubs.yaml). Reports "
            "the offset, chain and seq of every altered, missing, reordered, invented or undecodable entry, "
            "and checks the chain heads the hub stored with its committed offsets and, with --checkpoints, "
            "the signed heads of `xhub audit checkpoint` (a cut tail, a rebuilt or invented chain). "
            f"Exit status: 0 intact, {EXIT_BROKEN} broken."
        ),
    )
    p.add_argument("config_dir")
    p.add_argument("--hub", required=True, help="hub name from hubs.yaml")
    p.add_argument(
        "--topic", default=None, help="verify this topic instead of xhub.audit.<hub> (e.g. a copy)"
    )
    p.add_argument(
        "--checkpoints", default=None, metavar="DIR", help="check against the checkpoints kept in DIR"
    )
    p.add_argument(
        "--metrics-file",
        default=None,
        metavar="PATH",
        help="also write the result as Prometheus metrics (node exporter textfile collector: *.prom)",
    )
    p.set_defaults(func=_verify)

    p = commands.add_parser(
        "checkpoint",
        help="verify the audit, then write its chain heads, signed, to a new file in DIR",
        description=(
            "Verifies the hub's audit (as `xhub audit verify`, against the checkpoints already in DIR) and, "
            "when intact, writes the head (seq, hash) of every chain to a new file <hub>-<number>.json in "
            "DIR, signed with the audit key (HMAC-SHA256). Files are created once and never rewritten: keep "
            "DIR where the hub cannot write (the auditor's). A later `xhub audit verify --checkpoints DIR` "
            f"detects a tail cut after it, a rebuilt and an invented chain. Exit status: 0 written, "
            f"{EXIT_BROKEN} the audit is broken (nothing written)."
        ),
    )
    p.add_argument("config_dir")
    p.add_argument("--hub", required=True, help="hub name from hubs.yaml")
    p.add_argument("--dir", required=True, metavar="DIR", help="the auditor's checkpoint directory")
    p.add_argument(
        "--metrics-file",
        default=None,
        metavar="PATH",
        help="also write the result as Prometheus metrics (node exporter textfile collector: *.prom)",
    )
    p.set_defaults(func=_checkpoint)

    p = commands.add_parser(
        "show",
        help="who received record K of resource R (which fields); what subscriber S received from T1 to T2",
        description=(
            "Lists audit entries matching every option given, oldest first, then a summary per subscriber. "
            "Keys are found through their keyed hash (the hub secret must be available, as for xhub run). "
            "Times: ISO 8601 (without a zone: this machine's) or epoch millis; both ends included."
        ),
    )
    p.add_argument("config_dir")
    p.add_argument("--hub", required=True, help="hub name from hubs.yaml")
    p.add_argument("--resource", default=None, help="catalog code, e.g. PD-CRD-0001")
    p.add_argument("--key", default=None, help="business key of one record (needs --resource)")
    p.add_argument("--subscriber", default=None, help="receiving department id")
    p.add_argument("--since", default=None, help="from this time")
    p.add_argument("--until", default=None, help="up to this time")
    p.add_argument(
        "--kind",
        action="append",
        choices=("delivered", "refused", "policy_changed"),
        default=None,
        help="only entries of this kind (repeatable; default all)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per entry")
    p.set_defaults(func=_show)

    p = commands.add_parser(
        "trace",
        help="follow each delivery of record K of resource R back through every hub's audit to its source",
        description=(
            "Finds the deliveries of the key at the hub (keyed hash, as `audit show`), reads the provenance "
            "header of each delivered record and checks every hop it names against that hub's audit (a "
            "district hub's: give its config directory with --upstream), down to the source event. Exit "
            f"status: 0 every trace agrees, {EXIT_BROKEN} a hop or the source does not."
        ),
    )
    p.add_argument("config_dir")
    p.add_argument("--hub", required=True, help="hub name from hubs.yaml (the last hub, e.g. the city's)")
    p.add_argument("--resource", required=True, help="catalog code, e.g. PD-CRD-0001")
    p.add_argument("--key", required=True, help="business key of the record")
    p.add_argument(
        "--upstream",
        action="append",
        default=None,
        metavar="DIR",
        help="config directory of a hub before it (a district's), read on its own cluster (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per delivery")
    p.set_defaults(func=_trace)


def _trace(args: argparse.Namespace) -> int:
    from hub.audit.trace_command import trace_command

    traces = trace_command(
        args.config_dir, args.hub, args.resource, args.key, upstream=args.upstream, json_out=args.json
    )
    return 0 if all(t.ok for t in traces) else EXIT_BROKEN


def _verify(args: argparse.Namespace) -> int:
    return verify_command(
        args.config_dir,
        args.hub,
        topic=args.topic,
        checkpoints=args.checkpoints,
        metrics_file=args.metrics_file,
    )


def _checkpoint(args: argparse.Namespace) -> int:
    return checkpoint_command(args.config_dir, args.hub, args.dir, metrics_file=args.metrics_file)


def _show(args: argparse.Namespace) -> int:
    criteria = Criteria(
        resource=args.resource,
        key=args.key,
        subscriber=args.subscriber,
        since=args.since,
        until=args.until,
        kinds=args.kind,
    )
    return show_command(args.config_dir, args.hub, criteria, json_out=args.json)


def verify_topic(
    kafka: KafkaSettings, topic: str, decoder: Decoder, *, key: bytes, expect: Expectations | None = None
) -> VerifyReport:
    """Verify every chain of ``topic`` (read_committed, in order) with the audit ``key``."""
    items = ((r.offset, r.entry) for r in read_records(kafka, topic, decoder))
    return verify_entries(items, key=key, expect=expect or Expectations())


def verify_command(
    config_dir: str,
    hub: str,
    *,
    topic: str | None = None,
    checkpoints: str | Path | None = None,
    metrics_file: str | Path | None = None,
    out: IO[str] | None = None,
) -> int:
    """`xhub audit verify`: 0 when every chain is intact, EXIT_BROKEN when not (and where, why)."""
    out = out or sys.stdout
    report, name = _verified(config_dir, hub, topic=topic, checkpoints=checkpoints)
    if metrics_file is not None:
        write_verify_metrics(metrics_file, report, hub, time.time())
    _print_report(report, hub, name, out)
    return 0 if report.ok else EXIT_BROKEN


def checkpoint_command(
    config_dir: str,
    hub: str,
    directory: str | Path,
    *,
    metrics_file: str | Path | None = None,
    out: IO[str] | None = None,
) -> int:
    """`xhub audit checkpoint`: verify, then write the chain heads to a new signed file in ``directory``."""
    from hub.config import load_config
    from hub.core.envelope import now_ms

    out = out or sys.stdout
    Path(directory).mkdir(parents=True, exist_ok=True)  # the first checkpoint starts the directory
    report, name = _verified(config_dir, hub, topic=None, checkpoints=directory)
    if metrics_file is not None:
        write_verify_metrics(metrics_file, report, hub, time.time())
    if not report.ok:
        _print_report(report, hub, name, out)
        print("no checkpoint written: the audit does not verify", file=out)
        return EXIT_BROKEN
    cfg = load_config(config_dir)
    heads = Heads(
        topic=name,
        end_offset=report.end_offset,
        heads=tuple(
            ChainHead(c.chain, c.last_seq, c.last_hash, c.last_offset) for c in report.chains.values()
        ),
    )
    path = write_checkpoint(Path(directory), hub, heads, now_ms(), _audit_key(cfg, hub))
    print(
        f"checkpoint {path}: {len(heads.heads)} chains, audit read up to offset {heads.end_offset}", file=out
    )
    for head in sorted(heads.heads, key=lambda h: h.chain):
        print(f"chain {head.chain}: seq {head.seq}, hash {head.hash}", file=out)
    return 0


def _audit_key(cfg: ConfigDir, hub: str) -> bytes:
    from hub.config.secrets import audit_key

    return check_key(audit_key(cfg, hub).get_secret_value().encode("utf-8"), f"hub {hub}")


def _verified(
    config_dir: str, hub: str, *, topic: str | None, checkpoints: str | Path | None
) -> tuple[VerifyReport, str]:
    """The verify report of the hub's audit (or ``topic``) and the topic's name."""
    from hub.config import load_config
    from hub.core import names

    cfg = load_config(config_dir)
    cfg.hub(hub)  # an unknown hub is a config error, said as such
    key = _audit_key(cfg, hub)
    kafka = cfg.hubs_file.kafka
    name = topic or names.audit_topic(hub)
    group = names.hub_group(hub)
    expect = Expectations(known_chain=lambda chain: is_worker_chain(hub, chain))
    if checkpoints is not None:
        found, problems = read_checkpoints(Path(checkpoints), hub, key)
        expect = replace(expect, checkpoints=found, checkpoint_problems=problems)
    with open_decoder(cfg) as decoder:
        # The end first: the report's end offset is where the log was read to (for a checkpoint).
        end = end_offset(kafka, name)
        # Anchors before the log: every entry they name is committed before the log is read to its end.
        report = verify_topic(
            kafka, name, decoder, key=key, expect=replace(expect, anchors=read_anchors(kafka, group))
        )
        if report.problems and all(p.kind == "truncated" for p in report.problems):
            # An anchor can become visible a moment before its transaction's audit entries: look again.
            time.sleep(2.0)
            end = end_offset(kafka, name)
            report = verify_topic(
                kafka, name, decoder, key=key, expect=replace(expect, anchors=read_anchors(kafka, group))
            )
    report.end_offset = end
    return report, name


def _print_report(report: VerifyReport, hub: str, topic: str, out: IO[str]) -> None:
    print(
        f"audit of hub {hub} ({topic}): {report.entries} entries, {len(report.chains)} chains, "
        f"{report.anchors_checked} anchors checked, {report.checkpoints_checked} checkpoints",
        file=out,
    )
    for chain in sorted(report.chains.values(), key=lambda c: c.chain):
        anchored = f", anchored up to seq {chain.anchored_seq}" if chain.anchored_seq else ""
        if chain.checkpointed_seq:
            anchored += f", checkpointed up to seq {chain.checkpointed_seq}"
        print(
            f"chain {chain.chain}: seq {chain.first_seq}..{chain.last_seq}, {chain.entries} entries, "
            f"last hash {chain.last_hash} at offset {chain.last_offset}{anchored}",
            file=out,
        )
    first = report.first_break()
    if first is None:
        print(
            "ok: every chain is intact (a cut after the newest checkpoint shows only against a later one: "
            "run `xhub audit checkpoint` regularly)",
            file=out,
        )
        return
    print(f"BROKEN: {first}", file=out)
    for problem in report.problems:
        print(f"problem: {problem}", file=out)
    if report.more_problems:
        print(f"... and {report.more_problems} more problems", file=out)


def show_command(
    config_dir: str,
    hub: str,
    criteria: Criteria,
    *,
    json_out: bool = False,
    out: IO[str] | None = None,
) -> int:
    """`xhub audit show`: the entries matching every criterion given, oldest first, and a summary.

    "Who received record K of resource R, which fields": ``Criteria(resource=R, key=K)``. "What did
    subscriber S receive between T1 and T2": ``Criteria(subscriber=S, since=T1, until=T2)``.
    """
    from hub.config import load_config
    from hub.config.secrets import hub_secret
    from hub.core import names

    out = out or sys.stdout
    cfg = load_config(config_dir)
    query = build_query(hub_secret(cfg, hub), criteria)
    selected: list[dict[str, Any]] = []
    with open_decoder(cfg) as decoder:
        records = read_records(
            cfg.hubs_file.kafka,
            names.audit_topic(hub),
            decoder,
            ReadSpan(since_ms=query.since_ms, until_ms=query.until_ms),
        )
        for rec in records:
            if rec.entry is None or not query.matches(rec.entry):
                continue
            selected.append(rec.entry)
            print(to_json(rec.entry, rec.offset) if json_out else format_row(rec.entry), file=out)
    if not json_out:
        lines = summarize(selected)
        print(f"{len(selected)} entries" + (":" if lines else ""), file=out)
        for line in lines:
            print(f"  {line}", file=out)
    return 0
