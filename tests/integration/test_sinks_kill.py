"""Kill -9 the sink side again and again during a stream of changes: each change is applied exactly once.

The sink runs as a separate process (tests/integration/sinks_worker.py). While a producer streams
deliveries (upserts, deletes, and late changes older than what the key already has), the worker is
killed with SIGKILL five times at random moments and restarted (each batch lingers inside its database
transaction and again between the database commit and the Kafka commit, so that kills land there
often); the last one is stopped with SIGTERM
once it caught up. Then the table must equal the expected final state (per key, the newest seq; gone if
that is a delete), and the receipt log, written in the same transaction as the rows and the offsets,
must hold every delivered offset exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from connectors.sinks import SqlSink, SqlSinkConfig
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import delivery_topic
from hub.registry.server import RegistryServer
from tests.integration.sinks_support import (
    Change,
    DeliveryProducer,
    Sent,
    expected_rows,
    fetch,
    licence,
    make_topic,
    next_offsets,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
KILLS = 5
CHANGES = 2000
PER_TRANSACTION = 25


def stream(rng: random.Random) -> list[Change]:
    """Changes over 120 keys: mostly upserts, some deletes, some late changes older than the newest."""
    keys = [f"K{i:03d}" for i in range(120)]
    newest: dict[str, int] = {}
    changes: list[Change] = []
    for i in range(1, CHANGES + 1):
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.1 and key in newest:
            seq = newest[key] - 5 - rng.randrange(3)  # late and older: must lose (seqs are multiples of 10)
            changes.append(Change(key, "u", seq, licence(key, seq)))
            continue
        seq = 10 * i
        newest[key] = seq
        if roll < 0.2:
            changes.append(Change(key, "d", seq))
        else:
            changes.append(Change(key, "c" if roll < 0.3 else "u", seq, licence(key, seq)))
    return changes


class Worker:
    """One sink process; its stderr goes to a file the failure message can show."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self._start = log.stat().st_size if log.exists() else 0
        self._out = log.open("ab")
        env = {**os.environ, "XHUB_LOG_LEVEL": "INFO"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.sinks_worker", *argv],
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=self._out,
        )

    def wait_assigned(self) -> None:
        """Until this worker has its partitions (its signal handlers are set by then)."""

        def positioned() -> bool:
            with self.log.open("rb") as f:
                f.seek(self._start)
                return b'"partitions_assigned"' in f.read()

        wait_for(positioned, 30, "the worker to get its partitions")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._out.close()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        finally:
            self._out.close()
        return code


def test_sigkill_during_a_stream_applies_each_change_exactly_once(
    kafka: KafkaSettings,
    memory_registry: RegistryServer,
    dsn: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    rng = random.Random(20241121)
    topic = delivery_topic("hub1", unique_name("lic"))
    make_topic(kafka, topic)
    changes = stream(rng)
    sent: list[Sent] = []
    producer_error: list[BaseException] = []

    def produce() -> None:
        producer = DeliveryProducer(kafka, memory_registry.url, topic)
        try:
            for start in range(0, len(changes), PER_TRANSACTION):
                sent.extend(producer.send(changes[start : start + PER_TRANSACTION]))
                time.sleep(0.1)
        except BaseException as exc:
            producer_error.append(exc)
        finally:
            producer.close()

    argv = [
        kafka.bootstrap_servers,
        memory_registry.url,
        topic,
        unique_name("g"),
        dsn,
        unique_name("dept"),
        unique_name("member"),
        "--pause-ms",
        "40",
    ]
    log = tmp_path / "workers.log"
    producing = threading.Thread(target=produce, daemon=True)
    producing.start()

    probe = SqlSink(SqlSinkConfig(dsn=SecretStr(dsn), table="licences"))
    applied_before_last_kill = 0
    try:
        for _ in range(KILLS):
            worker = Worker(argv, log)
            # Kill once it is applying: on a loaded machine start-up alone can outlast a fixed window.
            worker.wait_assigned()
            time.sleep(rng.uniform(0.5, 2.0))
            worker.kill()
        applied_before_last_kill = sum(probe.committed_offsets(next_offsets(topic, sent)).values())
        producing.join(timeout=60)
        assert not producing.is_alive(), "producer did not finish"
        assert not producer_error, producer_error
        want = next_offsets(topic, sent)
        worker = Worker(argv, log)
        try:
            worker.wait_assigned()
            wait_for(lambda: probe.committed_offsets(want) == want, 60, "the last worker to catch up")
        finally:
            code = worker.terminate()
    except BaseException:
        print(log.read_text(encoding="utf-8", errors="replace")[-6000:])
        raise
    finally:
        probe.close()
    assert code == 0, log.read_text(encoding="utf-8", errors="replace")[-3000:]
    assert applied_before_last_kill > 0, "the killed workers never got to apply anything"
    assert len(sent) == CHANGES

    rows = {r[0]: r[1:] for r in fetch(dsn, "SELECT xhub_key, _xhub_seq, holder FROM licences")}
    expected = expected_rows(changes)
    assert set(rows) == set(expected)
    for key, change in expected.items():
        assert change.data is not None
        assert rows[key] == (change.seq, change.data["holder"]), key

    counts = Counter(fetch(dsn, 'SELECT topic, partition, "offset" FROM applied'))
    assert set(counts) == {(topic, s.partition, s.offset) for s in sent}
    duplicates = {k: n for k, n in counts.items() if n > 1}
    assert not duplicates, f"applied more than once: {sorted(duplicates)[:10]}"
