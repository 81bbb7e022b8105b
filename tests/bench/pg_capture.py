"""What capture costs the department's PostgreSQL, and our logical capture against Debezium's.

All on a PostgreSQL server of the bench's own (deploy/local/postgres.sh on a free port, wal_level=logical)
and the shared broker, in one run:

1. **Write cost.** A ``debtors`` table shaped like PD-CRD-0001; the department's own writes with no capture,
   with the capture triggers of ``sql_trigger``, and with the publication + slot of ``pg_logical``:
   single-row transactions (insert; commit each) and a COPY of 50,000 rows in one transaction, with the
   capture objects installed and the sidecar not running: what the writes themselves pay (triggers:
   inside each transaction; logical: the extra WAL). ``source_write_ratio_*`` = with capture / without;
   for logical, "without" is a second server with ``wal_level = replica`` (the department's server as it
   was: wal_level = logical is part of the cost); ``*_same_server`` compares with the same server. The
   databases live side by side and are written in turns (A B C D, D C B A, ...); the ratio is the median
   of the per-round ratios, with its spread. ``*_sidecars_running``: the same while both sidecars
   capture, which on this 2-core machine also take CPU from the writer (a department's database server
   has cores of its own; the WAL sender decoding for us takes one of them).
2. **Capture against Debezium** (PostgreSQL connector 3.6.1 in Kafka Connect standalone, default
   settings, JSON without schemas): both slots see the same WAL. Throughput: a backlog of N changes
   written while neither runs, then each alone drains it (events/s from its first event to its N-th,
   read back from Kafka). Latency: with the capture running, single-row commits at a steady rate; commit
   time (the source's commit timestamp in the event) to the event read back by a read_committed
   consumer, p50/p99.

Sizes: XHUB_BENCH_PG_COMMITS (single-row commits per run, default 3000), XHUB_BENCH_PG_COPY (50000),
XHUB_BENCH_PG_ROUNDS (5), XHUB_BENCH_PG_BACKLOG (20000), XHUB_BENCH_PG_RATE (200 commits/s for
XHUB_BENCH_PG_LATENCY_S, 20 s), XHUB_BENCH_DEBEZIUM (1; 0 skips the Debezium part).

    .venv/bin/python -m tests.bench.pg_capture   # this section alone: build/bench/pg_capture.json
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import yaml

from connectors.testing.catalog import write_connector_config
from connectors.testing.runtime import SidecarProcess, serde_for, shared_registry
from hub.core.kafka import ensure_topics, make_admin, make_consumer
from hub.core.kafka_settings import KafkaSettings
from hub.core.names import source_topic
from tests.bench.common import OUT, percentile

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_SH = ROOT / "deploy" / "local" / "postgres.sh"
DEBEZIUM_SH = ROOT / "deploy" / "local" / "debezium.sh"
SCHEMA_FILE = ROOT / "schemas" / "resources" / "dishonest_debtor.avsc"
RESOURCE = "PD-CRD-0001"
COLUMNS = (
    "case_no",
    "debtor_type",
    "debtor_id",
    "debtor_name",
    "court",
    "obligation",
    "performance_status",
    "publish_date",
    "district",
)
TABLE_SQL = (
    "CREATE TABLE debtors (case_no text PRIMARY KEY, debtor_type text NOT NULL, debtor_id text NOT NULL, "
    "debtor_name text NOT NULL, court text NOT NULL, obligation text, performance_status text NOT NULL, "
    "publish_date date NOT NULL, district text NOT NULL)"
)
_DISTRICTS = ["浦东新区", "黄浦区", "徐汇区", "静安区", "闵行区"]
_STATUS = ["全部未履行", "部分履行"]


def debtor_row(i: int, prefix: str = "") -> tuple[Any, ...]:
    """One debtor row (deterministic; ``prefix`` keeps keys of different phases apart)."""
    rng = random.Random(i)
    return (
        f"({2020 + i % 6}){prefix}沪0115执{i:07d}号",
        "person" if i % 3 else "entity",
        f"31011519{rng.randrange(10**9, 10**10)}",
        f"被执行人{i}",
        "上海市浦东新区人民法院",
        "支付货款人民币" + str(rng.randrange(10_000, 10_000_000)) + "元及利息",
        _STATUS[i % 2],
        dt.date(2024, 1, 1) + dt.timedelta(days=i % 700),
        _DISTRICTS[i % len(_DISTRICTS)],
    )


def _insert_sql() -> str:
    return f"INSERT INTO debtors ({', '.join(COLUMNS)}) VALUES ({', '.join('%s' for _ in COLUMNS)})"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def bench_postgres(options: str = "") -> Iterator[str]:
    """A PostgreSQL server of the bench's own (wal_level=logical unless ``options`` say otherwise),
    stopped and removed at the end."""
    home = Path(f"/tmp/xhub-bench-pg-{os.getpid()}-{abs(hash(options)) % 1000}")
    env = dict(os.environ, XHUB_PG_PORT=str(_free_port()), XHUB_PG_HOME=str(home), XHUB_PG_OPTIONS=options)
    subprocess.run(["bash", str(POSTGRES_SH), "up"], env=env, check=True, capture_output=True, timeout=180)
    dsn = subprocess.run(
        ["bash", str(POSTGRES_SH), "dsn"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        yield dsn
    finally:
        subprocess.run(["bash", str(POSTGRES_SH), "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def _db_dsn(admin_dsn: str, name: str) -> str:
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def _fresh_database(admin_dsn: str, name: str) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = _db_dsn(admin_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLE_SQL)
    return dsn


def _drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for (slot,) in conn.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE database = %s", (name,)
        ).fetchall():
            conn.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                "WHERE slot_name = %s AND active_pid IS NOT NULL",
                (slot,),
            )
            for _ in range(50):
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                    break
                time.sleep(0.2)
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- a department with a sidecar ------------------------------------------------------------------


def _write_catalog(root: Path, dept: str, bootstrap: str, registry_url: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("departments", "catalog", "schemas"):
        (root / sub).mkdir(exist_ok=True)
    shutil.copy(SCHEMA_FILE, root / "schemas" / "dishonest_debtor.avsc")
    (root / "hubs.yaml").write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": bootstrap},
                "registry": {"url": registry_url},
                "hubs": [{"name": "benchhub"}],
            }
        ),
        encoding="utf-8",
    )
    (root / "departments" / f"{dept}.yaml").write_text(
        yaml.safe_dump({"departments": [{"id": dept, "name": f"bench court {dept}", "systems": ["court"]}]}),
        encoding="utf-8",
    )
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    catalog = {
        "resources": [
            {
                "code": RESOURCE,
                "name": "失信被执行人名单 (bench)",
                "owner": dept,
                "schema": "schemas/dishonest_debtor.avsc",
                "key": "case_no",
                "share": "unconditional",
                "fields": {f["name"]: "internal" for f in schema["fields"]},
            }
        ]
    }
    (root / "catalog" / "court.yaml").write_text(
        yaml.safe_dump(catalog, allow_unicode=True), encoding="utf-8"
    )
    return root


class Department:
    """A department database with one capture source (``sql_trigger`` or ``pg_logical``) and its sidecar."""

    def __init__(
        self, kafka: KafkaSettings, dsn: str, mode: str, workdir: Path, *, batch_size: int = 500
    ) -> None:
        self.kafka = kafka
        self.dsn = dsn
        self.mode = mode
        self.workdir = workdir
        self.dept = f"b{uuid.uuid4().hex[:10]}"
        registry = shared_registry()
        self.registry_url = registry.url
        catalog = _write_catalog(workdir / "config", self.dept, kafka.bootstrap_servers, registry.url)
        source: dict[str, Any] = {
            "name": "court",
            "type": mode,
            "resource": RESOURCE,
            "database": dsn,
            "table": "debtors",
            "snapshot": False,
            "batch_size": batch_size,
        }
        if mode == "pg_logical":
            source["slot"] = f"xhub_{self.dept}"
        self.config = write_connector_config(
            workdir / "connector.yaml",
            dept=self.dept,
            catalog=catalog,
            bootstrap=kafka.bootstrap_servers,
            registry_url=registry.url,
            sources=[source],
        )
        self.topic = source_topic(self.dept, RESOURCE)
        self.sidecar = SidecarProcess(self.config, workdir / "sidecar.log")

    def install(self) -> None:
        from connectors.cli import install

        with contextlib.redirect_stdout(None):
            install(self.config)

    def start(self) -> None:
        self.sidecar.start()
        self.sidecar.wait_started(60)

    def stop(self) -> None:
        if self.sidecar.proc is not None:
            self.sidecar.terminate()


# --- 1. write cost ----------------------------------------------------------------------------------


def single_row_commits(dsn: str, count: int, first: int) -> float:
    """Transactions per second of ``count`` single-row inserts, each committed."""
    rows = [debtor_row(first + i) for i in range(count)]
    sql = _insert_sql()
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for row in rows:
            conn.execute(sql, row, prepare=True)
        return count / (time.perf_counter() - started)


def copy_rows(dsn: str, count: int, first: int) -> float:
    """Rows per second of one COPY of ``count`` rows in one transaction (commit included)."""
    rows = [debtor_row(first + i) for i in range(count)]
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY debtors ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return count / (time.perf_counter() - started)


PG_CAPTURE_KEYS = (
    "source_write_ratio_triggers_copy",
    "source_write_ratio_logical_copy",
    "source_write_ratio_logical_commits",
    "debezium_events_per_s",
    "capture_events_per_s",
    "capture_vs_debezium_throughput_ratio",
    "capture_vs_debezium_p99_ratio",
)
"""The keys ``make bench`` prints."""

MODES = ("none", "sql_trigger", "pg_logical")


def _rotation(
    dsns: dict[str, str], *, commits: int, copy: int, rounds: int, first: int
) -> dict[str, dict[str, list[float]]]:
    """Every mode measured once per round, in alternating order: adjacent runs share the machine's load."""
    rates: dict[str, dict[str, list[float]]] = {m: {"commits": [], "copy": []} for m in dsns}
    for round_no in range(rounds):
        order = list(dsns) if round_no % 2 == 0 else list(reversed(dsns))
        base = first + round_no * (commits + copy)
        for mode in order:
            rates[mode]["commits"].append(single_row_commits(dsns[mode], commits, base))
        for mode in reversed(order):
            rates[mode]["copy"].append(copy_rows(dsns[mode], copy, base + commits))
    return rates


def _ratios(
    rates: dict[str, dict[str, list[float]]], mode: str, kind: str, base: str = "none"
) -> tuple[float, list[float]]:
    """Median and spread of the per-round ratios mode / base (each round's runs were adjacent in time)."""
    per_round = [a / b for a, b in zip(rates[mode][kind], rates[base][kind], strict=True)]
    return statistics.median(per_round), [min(per_round), max(per_round)]


def write_cost(
    kafka: KafkaSettings,
    admin_dsn: str,
    replica_dsn: str,
    *,
    commits: int,
    copy: int,
    rounds: int,
) -> dict[str, Any]:
    """Department write rates with no capture, triggers and logical decoding.

    First with the capture objects installed and no sidecar running (what the writes themselves pay),
    then again while the sidecars capture (on this 2-core machine they also take CPU from the writer;
    a department's server has cores of its own, and the WAL sender decoding for us takes one).
    """
    dsns = {mode: _fresh_database(admin_dsn, f"bench_{mode}") for mode in MODES}
    # The department's server as it was before logical decoding: the same, with wal_level = replica.
    dsns["replica"] = _fresh_database(replica_dsn, "bench_none")
    departments: list[Department] = []
    out: dict[str, Any] = {}
    try:
        for mode in MODES[1:]:
            workdir = OUT / "pg_capture" / f"bench_{mode}"
            shutil.rmtree(workdir, ignore_errors=True)
            dept = Department(kafka, dsns[mode], mode, workdir)
            dept.install()
            departments.append(dept)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        rates = _rotation(dsns, commits=commits, copy=copy, rounds=rounds, first=0)
        for dept in departments:
            dept.start()
        time.sleep(5)  # past their start-up (registry, producer, position): capturing
        running = _rotation(dsns, commits=commits, copy=copy, rounds=max(1, rounds // 2), first=10_000_000)
    finally:
        for dept in departments:
            dept.stop()
        for mode in MODES:
            _drop_database(admin_dsn, f"bench_{mode}")
        _drop_database(replica_dsn, "bench_none")
    out["pg_write_rates"] = rates
    out["pg_write_rates_sidecars_running"] = running
    out["pg_write_commits_tx_per_s"] = {m: round(statistics.median(r["commits"])) for m, r in rates.items()}
    out["pg_write_copy_rows_per_s"] = {m: round(statistics.median(r["copy"])) for m, r in rates.items()}
    # Triggers: against no capture on the same server. Logical: against the server with wal_level =
    # replica, as the department had it (wal_level = logical is part of its cost); also the same server.
    for mode, name, base in (("sql_trigger", "triggers", "none"), ("pg_logical", "logical", "replica")):
        for kind in ("commits", "copy"):
            ratio, spread = _ratios(rates, mode, kind, base)
            out[f"source_write_ratio_{name}_{kind}"] = ratio
            out[f"source_write_ratio_{name}_{kind}_spread"] = spread
            out[f"source_write_ratio_{name}_{kind}_sidecars_running"] = _ratios(running, mode, kind, base)[0]
    for kind in ("commits", "copy"):
        out[f"source_write_ratio_logical_{kind}_same_server"] = _ratios(rates, "pg_logical", kind)[0]
        out[f"wal_level_logical_vs_replica_{kind}"] = _ratios(rates, "none", kind, "replica")[0]
    return out


# --- 2. capture against Debezium -------------------------------------------------------------------


class Arrivals:
    """Reads a topic (read_committed) in a thread; notes when each record arrived and its commit time."""

    def __init__(
        self, kafka: KafkaSettings, topic: str, commit_ms: Callable[[bytes], tuple[str, int]]
    ) -> None:
        self.consumer = make_consumer(kafka, f"bench-arrivals-{uuid.uuid4().hex[:6]}", group_id=None)
        from kafka import TopicPartition

        parts = self.consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + 30
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            self.consumer.topics()
            parts = self.consumer.partitions_for_topic(topic) or set()
        self.consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        self.consumer.seek_to_end()
        for tp in self.consumer.assignment():
            self.consumer.position(tp)
        self.commit_ms = commit_ms
        self.arrived: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self.consumer.poll(timeout_ms=100, max_records=5000).values():
                now = time.time()
                for r in records:
                    if r.value is not None:
                        key, commit = self.commit_ms(r.value)
                        self.arrived.append((now, key, commit))

    def wait_for(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while len(self.arrived) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.arrived) >= count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.consumer.close()


def _ours_decoder(registry_url: str) -> Callable[[bytes], tuple[str, int]]:
    serde = serde_for(registry_url)

    def decode(value: bytes) -> tuple[str, int]:
        event = serde.decode(value)[1]
        commit = event["source"]["commit_ts_ms"]  # timestamp-millis: decoded as a datetime
        ms = commit.timestamp() * 1000 if isinstance(commit, dt.datetime) else commit
        return str(event["key"]), int(ms)

    return decode


def _debezium_decode(value: bytes) -> tuple[str, int]:
    event = json.loads(value)
    return str(event["after"]["case_no"] if event.get("after") else event["before"]["case_no"]), int(
        event["source"]["ts_ms"]
    )


class Debezium:
    """Kafka Connect standalone with Debezium's PostgreSQL connector, on a slot and publication of its own."""

    def __init__(self, kafka: KafkaSettings, dsn: str, workdir: Path) -> None:
        import urllib.parse

        url = urllib.parse.urlsplit(dsn)
        self.prefix = f"dbz{uuid.uuid4().hex[:8]}"
        self.slot = f"{self.prefix}_slot"
        self.publication = f"{self.prefix}_pub"
        self.topic = f"{self.prefix}.public.debtors"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.worker = workdir / "worker.properties"
        self.connector = workdir / "connector.properties"
        self.log = workdir / "connect.log"
        self.worker.write_text(
            "\n".join(
                [
                    f"bootstrap.servers={kafka.bootstrap_servers}",
                    "key.converter=org.apache.kafka.connect.json.JsonConverter",
                    "value.converter=org.apache.kafka.connect.json.JsonConverter",
                    "key.converter.schemas.enable=false",
                    "value.converter.schemas.enable=false",
                    f"offset.storage.file.filename={workdir / 'offsets.dat'}",
                    "offset.flush.interval.ms=1000",
                    "listeners=http://127.0.0.1:0",
                    *self._tls(kafka, workdir),
                    "",
                ]
            )
        )
        self.connector.write_text(
            "\n".join(
                [
                    "name=dbz-bench",
                    "connector.class=io.debezium.connector.postgresql.PostgresConnector",
                    "tasks.max=1",
                    f"database.hostname={url.hostname}",
                    f"database.port={url.port}",
                    f"database.user={url.username}",
                    "database.password=",
                    f"database.dbname={url.path.lstrip('/')}",
                    f"topic.prefix={self.prefix}",
                    "table.include.list=public.debtors",
                    "plugin.name=pgoutput",
                    f"slot.name={self.slot}",
                    f"publication.name={self.publication}",
                    "publication.autocreate.mode=disabled",
                    "snapshot.mode=no_data",
                    "tombstones.on.delete=false",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.kafka = kafka

    @staticmethod
    def _tls(kafka: KafkaSettings, workdir: Path) -> list[str]:
        """The worker's mutual TLS on a secure broker (the default one): the same identity as ours, as a
        PEM key store of key and certificate (Kafka's ``ssl.keystore.type=PEM``), for the worker and the
        producer, consumer and admin clients it makes for the connector."""
        if kafka.security_protocol != "SSL" or not (kafka.ssl_certfile and kafka.ssl_keyfile):
            return []
        bundle = workdir / "client.bundle.pem"
        bundle.write_bytes(Path(kafka.ssl_keyfile).read_bytes() + Path(kafka.ssl_certfile).read_bytes())
        bundle.chmod(0o600)
        settings = [
            "security.protocol=SSL",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={bundle}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={kafka.ssl_cafile}",
            "ssl.endpoint.identification.algorithm=",
        ]
        return settings + [
            f"{client}.{line}" for client in ("producer", "consumer", "admin") for line in settings
        ]

    def prepare(self, dsn: str) -> None:
        """Its slot, publication and topic (the broker does not create topics on its own)."""
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE PUBLICATION {self.publication} FOR TABLE debtors")
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,))
        admin = make_admin(self.kafka, "bench-debezium")
        try:
            ensure_topics(admin, {self.topic: {}}, partitions=3)
        finally:
            admin.close()

    def start(self) -> None:
        with (self.workdir / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen(
                ["bash", str(DEBEZIUM_SH), "run", str(self.worker), str(self.connector), str(self.log)],
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


def _write_backlog(dsn: str, count: int, prefix: str, per_txn: int = 100) -> None:
    sql = _insert_sql()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for start in range(0, count, per_txn):
            cur.executemany(sql, [debtor_row(i, prefix) for i in range(start, min(count, start + per_txn))])
            conn.commit()


def _steady_commits(dsn: str, rate: int, seconds: float, prefix: str) -> int:
    sql = _insert_sql()
    count = int(rate * seconds)
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for i in range(count):
            conn.execute(sql, debtor_row(i, prefix), prepare=True)
            wait = started + (i + 1) / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
    return count


def _drain_rate(arrivals: Arrivals, count: int) -> float:
    times = sorted(t for t, _, _ in arrivals.arrived[:count])
    return (count - 1) / max(1e-6, times[-1] - times[0])


def _latencies(arrivals: Arrivals, prefix: str) -> list[float]:
    return [max(0.0, t * 1000 - commit) for t, key, commit in arrivals.arrived if prefix in key]


def capture_vs_debezium(
    kafka: KafkaSettings, admin_dsn: str, *, backlog: int, rate: int, seconds: float, debezium: bool
) -> dict[str, Any]:
    name = "bench_capture"
    dsn = _fresh_database(admin_dsn, name)
    workdir = OUT / "pg_capture" / name
    shutil.rmtree(workdir, ignore_errors=True)
    ours = Department(kafka, dsn, "pg_logical", workdir / "ours")
    dbz = Debezium(kafka, dsn, workdir / "debezium") if debezium else None
    out: dict[str, Any] = {}
    try:
        ours.install()
        if dbz is not None:
            subprocess.run(["bash", str(DEBEZIUM_SH), "fetch"], check=True, timeout=900)
            dbz.prepare(dsn)
        # Our topic exists once the sidecar ran once: start and stop it before the backlog.
        ours.start()
        ours.stop()
        _write_backlog(dsn, backlog, "B")
        # Ours drains the backlog, then runs at a steady rate.
        arrivals = Arrivals(kafka, ours.topic, _ours_decoder(ours.registry_url))
        ours.start()
        assert arrivals.wait_for(backlog, 600), f"ours: {len(arrivals.arrived)} of {backlog}"
        out["capture_events_per_s"] = _drain_rate(arrivals, backlog)
        out["capture_backlog_events"] = len(arrivals.arrived)
        sent = _steady_commits(dsn, rate, seconds, "L")
        arrivals.wait_for(backlog + sent, 60)
        ours_lat = _latencies(arrivals, "L")
        arrivals.close()
        ours.stop()
        out["capture_latency_ms_p50"] = percentile(ours_lat, 50)
        out["capture_latency_ms_p99"] = percentile(ours_lat, 99)
        out["capture_latency_events"] = len(ours_lat)
        if dbz is not None:
            arrivals = Arrivals(kafka, dbz.topic, _debezium_decode)
            dbz.start()
            # Debezium's slot holds the backlog, then the latency phase of ours: it reads both.
            total = backlog + sent
            assert arrivals.wait_for(total, 900), f"debezium: {len(arrivals.arrived)} of {total}"
            out["debezium_events_per_s"] = _drain_rate(arrivals, backlog)
            out["debezium_backlog_events"] = sum(1 for _, key, _ in arrivals.arrived if "B" in key)
            _steady_commits(dsn, rate, seconds, "M")
            arrivals.wait_for(total + sent, 60)
            dbz_lat = _latencies(arrivals, "M")
            arrivals.close()
            dbz.stop()
            out["debezium_latency_ms_p50"] = percentile(dbz_lat, 50)
            out["debezium_latency_ms_p99"] = percentile(dbz_lat, 99)
            out["debezium_latency_events"] = len(dbz_lat)
            out["capture_vs_debezium_throughput_ratio"] = (
                out["capture_events_per_s"] / out["debezium_events_per_s"]
            )
            out["capture_vs_debezium_p99_ratio"] = (
                out["capture_latency_ms_p99"] / out["debezium_latency_ms_p99"]
            )
    finally:
        ours.stop()
        if dbz is not None:
            dbz.stop()
        _drop_database(admin_dsn, name)
    return out


def pg_capture_benchmark(kafka: KafkaSettings) -> dict[str, Any]:
    """Both parts on one PostgreSQL server of the bench's own."""
    env = os.environ
    with bench_postgres() as admin_dsn, bench_postgres("-c wal_level=replica") as replica_dsn:
        summary = write_cost(
            kafka,
            admin_dsn,
            replica_dsn,
            commits=int(env.get("XHUB_BENCH_PG_COMMITS", "3000")),
            copy=int(env.get("XHUB_BENCH_PG_COPY", "50000")),
            rounds=int(env.get("XHUB_BENCH_PG_ROUNDS", "5")),
        )
        try:
            summary.update(
                capture_vs_debezium(
                    kafka,
                    admin_dsn,
                    backlog=int(env.get("XHUB_BENCH_PG_BACKLOG", "20000")),
                    rate=int(env.get("XHUB_BENCH_PG_RATE", "200")),
                    seconds=float(env.get("XHUB_BENCH_PG_LATENCY_S", "20")),
                    debezium=env.get("XHUB_BENCH_DEBEZIUM", "1") != "0",
                )
            )
        except (AssertionError, subprocess.SubprocessError, OSError) as exc:
            summary["capture_vs_debezium_error"] = f"{type(exc).__name__}: {exc}"
    return summary


def main() -> int:
    from hub.core.log import configure_logging

    configure_logging("WARNING")
    kafka = KafkaSettings(bootstrap_servers=os.environ.get("XHUB_TEST_BOOTSTRAP", "127.0.0.1:9092"))
    OUT.mkdir(parents=True, exist_ok=True)
    summary = pg_capture_benchmark(kafka)
    (OUT / "pg_capture.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    for key, value in summary.items():
        if not isinstance(value, dict):
            print(f"{key:45s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
