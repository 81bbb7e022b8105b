"""``xhub transactions``: the operator's look for hanging transactions on a config's topics, and their abort.

A hanging transaction (hub.core.hanging_transactions) stops every read_committed reader of its partition
for good. A party aborts its own right after ``init_transactions`` when it may; under the generated ACLs
a department or hub may not (the abort needs ClusterAction), so the operator runs this as the broker's
super user: it lists the transactions open for longer than ``--older-than`` seconds on the config's
``xhub.*`` topics, says which of them no coordinator will ever end, and with ``--abort`` ends those.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import IO, Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from hub.core import names
from hub.core.errors import RetriableError
from hub.core.hanging_transactions import OpenTransaction, abort_hanging, open_transactions, partitions_of

EXIT_HANGING = 3
"""Exit status when hanging transactions were found and not aborted."""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "transactions",
        help="find the open transactions on the config's topics that never end (hanging), and abort them",
        description=(
            "Lists the transactions open on the config's xhub.* topics for at least --older-than seconds, "
            "each with what its coordinator says, and marks the hanging ones (no coordinator will ever "
            "end them: every read_committed reader of the partition waits at them). --abort writes their "
            "abort markers. Run it as the broker's super user (it reads every topic's producer state and "
            f"the abort needs ClusterAction). Exit status: 0 none hanging (or all aborted), {EXIT_HANGING} "
            "hanging transactions left, 1 config error, 2 Kafka error."
        ),
    )
    p.add_argument("config_dir")
    p.add_argument(
        "--older-than",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="only transactions whose producer last wrote this long ago (default 60)",
    )
    p.add_argument("--abort", action="store_true", help="abort the hanging transactions found")
    p.add_argument("--json", action="store_true", help="one JSON object per open transaction")
    p.set_defaults(func=_transactions)


def _transactions(args: argparse.Namespace) -> int:
    return transactions_command(
        args.config_dir, older_than_s=args.older_than, abort=args.abort, json_out=args.json
    )


def transactions_command(
    config_dir: str,
    *,
    older_than_s: float = 60.0,
    abort: bool = False,
    json_out: bool = False,
    out: IO[str] | None = None,
) -> int:
    """Print the open transactions of the config's topics; abort the hanging ones with ``abort``.

    Raises:
        ConfigError: the config directory is invalid.
        RetriableError: the cluster did not answer or refused (not the super user).
    """
    from hub.config import load_config
    from hub.core.kafka import make_admin

    stream = out or sys.stdout
    cfg = load_config(config_dir)
    owners = set(cfg.departments) | set(cfg.hubs)
    admin = make_admin(cfg.hubs_file.kafka, "transactions")
    try:
        topics = sorted(t for t in admin.list_topics() if names.owner_of(t) in owners)
        partitions = partitions_of(admin, topics)
        found = open_transactions(admin, partitions, time.time_ns() // 1_000_000, int(older_than_s * 1000))
        left = 0
        for txn in found:
            aborted = abort and txn.hanging
            if aborted:
                abort_hanging(admin, txn)
            elif txn.hanging:
                left += 1
            stream.write((json.dumps(_as_json(txn, aborted)) if json_out else _as_text(txn, aborted)) + "\n")
        if not json_out:
            hanging = sum(t.hanging for t in found)
            stream.write(
                f"{len(topics)} topics, {len(partitions)} partitions: {len(found)} open transactions older "
                f"than {older_than_s:g} s, {hanging} hanging"
                + (f", {hanging - left} aborted" if abort else "")
                + "\n"
            )
    except KafkaError as exc:
        raise RetriableError(
            f"Kafka at {cfg.hubs_file.kafka.bootstrap_servers} answered {type(exc).__name__}: {exc} "
            "(xhub transactions runs as the broker's super user)"
        ) from exc
    finally:
        admin.close()
    return EXIT_HANGING if left else 0


def _where(tp: TopicPartition) -> str:
    return f"{tp.topic}-{tp.partition}"


def _as_text(txn: OpenTransaction, aborted: bool) -> str:
    p, c = txn.producer, txn.coordinator
    said = (
        "no coordinator knows the producer"
        if c is None
        else f"{txn.transactional_id}: {c.state.value}, producer {c.producer_id} epoch {c.producer_epoch}"
    )
    verdict = "ABORTED" if aborted else "HANGING" if txn.hanging else "open"
    return (
        f"{verdict:<8} {_where(txn.partition)} producer {p.producer_id} epoch {p.producer_epoch} "
        f"open from offset {p.current_transaction_start_offset}; coordinator: {said}"
    )


def _as_json(txn: OpenTransaction, aborted: bool) -> dict[str, Any]:
    p, c = txn.producer, txn.coordinator
    return {
        "topic": txn.partition.topic,
        "partition": txn.partition.partition,
        "producer_id": p.producer_id,
        "producer_epoch": p.producer_epoch,
        "start_offset": p.current_transaction_start_offset,
        "last_write_ms": p.last_timestamp,
        "transactional_id": txn.transactional_id,
        "coordinator_state": None if c is None else c.state.value,
        "hanging": txn.hanging,
        "aborted": aborted,
    }
