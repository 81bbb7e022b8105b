"""A sidecar's sink side in its own process, for the kill tests.

    python -m tests.integration.sinks_worker BOOTSTRAP REGISTRY_URL TOPIC GROUP DSN DEPT INSTANCE_ID

Runs a SinkLoop into an SqlSink (table ``licences``, receipt log ``applied``) until SIGTERM.
``--pause-ms`` makes every batch linger inside its database transaction and again between the database
commit and the Kafka group commit, so that random kills land in those windows often.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from pydantic import SecretStr

from connectors.runtime.sink_loop import SinkLoop
from connectors.sinks import Delivery, SqlSink, SqlSinkConfig
from connectors.sinks.base import PartitionProgress
from hub.core.kafka_settings import KafkaSettings
from hub.core.log import configure_logging


class PausingSqlSink(SqlSink):
    """An SqlSink that lingers at the two moments a crash is most likely to break exactly-once."""

    pause_s = 0.0

    def _finish(
        self,
        batch: Sequence[Delivery],
        spans: Sequence[PartitionProgress],
        rejected: list[tuple[Delivery, str, str]],
    ) -> None:
        super()._finish(batch, spans, rejected)
        time.sleep(self.pause_s)  # rows, receipts and offsets written, transaction not committed

    def write(self, batch: Sequence[Delivery], progress: Sequence[PartitionProgress] | None = None) -> None:
        super().write(batch, progress)
        time.sleep(self.pause_s)  # committed in the database, not yet in the Kafka group


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sinks_worker")
    for name in ("bootstrap", "registry_url", "topic", "group", "dsn", "dept", "instance_id"):
        parser.add_argument(name)
    parser.add_argument("--max-batch", type=int, default=50)
    parser.add_argument("--pause-ms", type=int, default=0)
    args = parser.parse_args(argv)
    configure_logging("INFO", json=True)
    sink = PausingSqlSink(
        SqlSinkConfig(dsn=SecretStr(args.dsn), table="licences", applied_log_table="applied")
    )
    sink.pause_s = args.pause_ms / 1000
    loop = SinkLoop(
        KafkaSettings(bootstrap_servers=args.bootstrap),
        args.registry_url,
        args.topic,
        args.group,
        sink,
        dept=args.dept,
        max_batch=args.max_batch,
        poll_timeout_ms=200,
        retry_initial_s=0.1,
        retry_max_s=1.0,
        # Static membership: a restarted worker takes its predecessor's place at once instead of
        # waiting for the killed member's session to time out.
        consumer_overrides={"group_instance_id": args.instance_id, "session_timeout_ms": 10000},
    )
    loop.install_signal_handlers()
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
