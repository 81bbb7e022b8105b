"""Throughput: the hub against a raw kafka-python copy loop, and the hub's cost as the catalog grows."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from typing import Any

import yaml
from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from connectors.validation import RecordValidator
from hub.app import start_hub
from hub.config import load_config
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.envelope import ChangeEvent, change_event_schema, key_bytes
from hub.core.kafka import ensure_topics, make_admin, make_consumer, make_producer
from hub.core.kafka_settings import KafkaSettings
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.demo.generator import legal_entity, make_faker
from hub.provision.session import provision_session
from hub.registry.server import RegistryServer
from hub.registry.store import SchemaStore
from tests.bench.common import Interleaved, bench_config, median, wait_until

RESOURCE = "PD-ENT-0001"


def entities(cfg: ConfigDir, count: int, seed: int = 5) -> list[dict[str, Any]]:
    fake = make_faker(seed)
    check = RecordValidator(cfg.schemas[RESOURCE], "credit_code", "credit_code")
    distinct = [
        check.validate(legal_entity(fake, district="浦东新区" if i % 3 == 0 else None))
        for i in range(min(count, 2000))
    ]
    return [distinct[i % len(distinct)] for i in range(count)]


def produce_source(cfg: ConfigDir, registry_url: str, records: list[dict[str, Any]]) -> str:
    """Publish ``records`` as change events of the legal-entity resource; returns the source topic."""
    resource = cfg.resources[RESOURCE]
    topic = names.source_topic(resource.owner, RESOURCE)
    schema = change_event_schema(RESOURCE, cfg.schemas[RESOURCE])
    serde = AvroSerde(RegistryClient(registry_url))
    producer = make_producer(cfg.hubs_file.kafka, "bench-source", linger_ms=20)
    now = int(time.time() * 1000)
    for seq, record in enumerate(records, start=1):
        key = f"{record['credit_code']}-{seq}"  # distinct keys: nothing compacts away mid-benchmark
        event = ChangeEvent(RESOURCE, "c", key, seq, resource.owner, "bench", now, record)
        producer.send(
            topic, key=key_bytes(key), value=serde.encode(f"{topic}-value", schema, event.to_avro())
        )
    producer.flush()
    producer.close()
    return topic


class Registry:
    def __init__(self, kafka: KafkaSettings) -> None:
        self.store = SchemaStore(kafka)
        self.store.start()
        self.server = RegistryServer(self.store)
        self.server.start()
        self.url = self.server.url

    def close(self) -> None:
        self.server.stop()
        self.store.stop()


def applied_config(kafka: KafkaSettings, attempts: int = 6) -> tuple[ConfigDir, dict[str, str]]:
    """A fresh bench config, applied; a shared broker that times out is given five more tries."""
    for attempt in range(1, attempts + 1):
        root, renames = bench_config(kafka)
        cfg = load_config(root)
        try:
            with provision_session(cfg) as session:
                session.apply()
        except KafkaError:
            if attempt == attempts:
                raise
            time.sleep(10)
            continue
        return cfg, renames
    raise AssertionError("unreachable")


def with_other_catalog(
    kafka: KafkaSettings, cfg: ConfigDir, renames: dict[str, str], subscriptions: int
) -> ConfigDir:
    """The applied config plus ``subscriptions`` idle subscriptions on other resources, loaded, not applied.

    Applying them would create one delivery topic each (10,000 topics on a laptop broker); the hub only needs
    their source topics to exist, so those are created directly.
    """
    resources, subs = other_catalog(subscriptions)
    for res in resources:
        res["owner"] = renames[res["owner"]]
    for sub in subs:
        sub["subscriber"], sub["hub"] = renames[sub["subscriber"]], renames[sub["hub"]]
    (cfg.root / "catalog" / "bench-other.yaml").write_text(
        yaml.safe_dump({"resources": resources}, allow_unicode=True), encoding="utf-8"
    )
    # a config file may hold at most 1 MiB: 1,000 subscriptions per file, as an integrator would split them
    for start in range(0, len(subs), 1000):
        (cfg.root / "subscriptions" / f"bench-other-{start // 1000:03d}.yaml").write_text(
            yaml.safe_dump({"subscriptions": subs[start : start + 1000]}, allow_unicode=True),
            encoding="utf-8",
        )
    admin = make_admin(kafka)
    ensure_topics(admin, {names.source_topic(r["owner"], r["code"]): {} for r in resources}, partitions=1)
    admin.close()
    return load_config(cfg.root)


def hub_throughput(
    kafka: KafkaSettings,
    n: int,
    *,
    profile_to: str | None = None,
    other_subscriptions: int = 0,
    serve_admin: bool = True,
) -> dict[str, Any]:
    """N records through one hub worker; output records/s counting the delivery records it wrote.

    The audit is the hub's own overhead (one record per batch and chain): the passthrough it is compared with
    copies exactly as many records per input as the hub delivered, so the audit is not counted as output.
    """
    cfg, renames = applied_config(kafka)
    if other_subscriptions:
        cfg = with_other_catalog(kafka, cfg, renames, other_subscriptions)
    registry = Registry(kafka)
    try:
        produce_source(cfg, registry.url, entities(cfg, n))
        profiler = None
        if profile_to:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled")
        # The applied snapshot lacks the idle subscriptions; do not let the hub swap back to it.
        process = start_hub(
            cfg,
            renames["pudong"],
            follow_config=not other_subscriptions,
            first_start="replay",
            start_thread=False,
            serve_admin=serve_admin,
        )
        stats = process.worker.stats
        timing: dict[str, float] = {}

        def measure() -> None:
            # pyinstrument samples the thread it runs in: the worker runs in this (main) thread, so this
            # watcher thread does the timing and stops the worker at the end, or when time runs out.
            try:
                wait_until(lambda: stats.consumed > 0, timeout=120)
                timing["start"], timing["consumed"] = time.perf_counter(), stats.consumed
                wait_until(lambda: stats.consumed >= n, timeout=600, poll=0.005)
                timing["end"] = time.perf_counter()
            finally:
                process.worker.stop()

        watcher = threading.Thread(target=measure)
        watcher.start()
        try:
            if profiler is not None:
                profiler.start()
            process.worker.run()
            if profiler is not None:
                profiler.stop()
                with open(profile_to, "w", encoding="utf-8") as fh:
                    fh.write(profiler.output_text(unicode=True, color=False, show_all=False))
        finally:
            watcher.join()
            process.close()
        if "end" not in timing:
            raise TimeoutError(f"the hub did not consume {n} records (consumed {stats.consumed})")
        elapsed = timing["end"] - timing["start"]
        consumed_at_start = int(timing["consumed"])
        with stats.lock:
            delivered = sum(s.delivered for s in stats.subscriptions.values())
        measured = n - consumed_at_start
        per_input = delivered / n
        return {
            "records": n,
            "seconds": elapsed,
            "input_records_per_s": measured / elapsed,
            "output_records_per_s": per_input * measured / elapsed,
            "outputs_per_input": per_input,
            "cost_us_per_record": elapsed / measured * 1e6,
        }
    finally:
        registry.close()


def passthrough_throughput(
    kafka: KafkaSettings, n: int, outputs_per_input: float, *, policy_floor: bool = False
) -> dict[str, Any]:
    """A plain consumer -> transactional producer copy with the hub's batching, same outputs per input.

    ``outputs_per_input`` may be fractional (a filtered subscription gets some records): record i is copied
    floor((i+1)·f) - floor(i·f) times, so the passthrough writes as many records as the hub delivered.

    ``policy_floor``: the copy also does what no policy-enforcing hub can skip, with the hub's own calls and
    nothing else: decode each input once (AvroSerde, logical types left alone, as the hub reads), Avro-encode
    each output, and send it with headers of the hub's shape (built once, so they cost only their bytes).
    Policy, routing, masking, audit and state are left out: the floor's ratio to the plain copy bounds what
    ``hub_vs_passthrough_ratio`` can reach with these libraries.
    """
    cfg, _ = applied_config(kafka)
    registry = Registry(kafka)
    try:
        source = produce_source(cfg, registry.url, entities(cfg, n))
        recode = _FloorRecode(cfg, registry.url) if policy_floor else None
    finally:
        if not policy_floor:
            registry.close()
    target = source.replace("xhub.src.", "bench.copy.")
    admin = make_admin(kafka)
    ensure_topics(admin, {target: {}}, partitions=3)
    admin.close()
    producer = make_producer(
        kafka, "bench-copy", transactional_id=f"bench-copy-{target}", transaction_timeout_ms=30000
    )
    consumer = make_consumer(kafka, "bench-copy", group_id=f"bench-copy-{target}", max_poll_records=500)
    producer.init_transactions()
    consumer.subscribe([source])
    consumed = 0
    started = None
    while consumed < n:
        batch = consumer.poll(timeout_ms=100, max_records=500)
        if not batch:
            continue
        if started is None:
            started = time.perf_counter()
        producer.begin_transaction()
        index = consumed
        for records in batch.values():
            for rec in records:
                copies = math.floor((index + 1) * outputs_per_input) - math.floor(index * outputs_per_input)
                index += 1
                if recode is None:
                    for _ in range(copies):
                        producer.send(target, key=rec.key, value=rec.value, headers=rec.headers)
                elif copies:
                    event = recode.decode(rec.value)
                    for _ in range(copies):
                        producer.send(target, key=rec.key, value=recode.encode(event), headers=recode.headers)
        producer.flush()
        offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "", -1) for tp, records in batch.items()}
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        producer.commit_transaction()
        consumed += sum(len(r) for r in batch.values())
    assert started is not None
    elapsed = time.perf_counter() - started
    consumer.close()
    producer.close()
    if policy_floor:
        registry.close()
    return {
        "records": n,
        "seconds": elapsed,
        "policy_floor": policy_floor,
        "outputs_per_input": outputs_per_input,
        "output_records_per_s": math.floor(n * outputs_per_input) / elapsed,
    }


class _FloorRecode:
    """The per-record work every hub must do on top of a copy: decode, encode, headers (see above)."""

    def __init__(self, cfg: ConfigDir, registry_url: str) -> None:
        self.serde = AvroSerde(RegistryClient(registry_url))
        self.schema = change_event_schema(RESOURCE, cfg.schemas[RESOURCE])
        self.subject = f"bench-floor-{uuid.uuid4().hex[:8]}-value"
        hop = {"hub": "pudong", "policy_version": "0" * 16, "chain": "c", "seq": 1, "subscription": "s"}
        provenance = {
            "source": {"dept": "amr", "system": "bench", "commit_ts_ms": 0, "event_id": str(uuid.uuid4())},
            "hops": [hop],
        }
        self.headers = [
            ("xhub.event_id", str(uuid.uuid4()).encode()),
            ("xhub.policy", b"0" * 16),
            ("xhub.hub", b"pudong"),
            ("xhub.subscription", b"bench-projection"),
            ("xhub.source", b"xhub.src.amr.pd-ent-0001-0@123456"),
            ("xhub.provenance", json.dumps(provenance, separators=(",", ":")).encode()),
        ]

    def decode(self, value: bytes | None) -> Any:
        assert value is not None
        return self.serde.decode(value, logical=False)[1]

    def encode(self, event: Any) -> bytes:
        return self.serde.encode(self.subject, self.schema, event)


# 100 subscriptions per resource: a hub keeps each resource's subscription state in Kafka's committed-
# offset metadata, which the broker caps at 4 KB by default (about 150 subscriptions per resource).
OTHER_RESOURCES = 100


def other_catalog(subscriptions: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``subscriptions`` subscriptions spread over a few other resources that carry no traffic."""
    licence_fields = (
        "licence_no",
        "credit_code",
        "entity_name",
        "licence_type",
        "issue_date",
        "valid_until",
        "issuing_authority",
    )
    resources = [
        {
            "code": f"PD-SOC-{i:04d}",
            "name": f"bench other {i}",
            "owner": "amr",
            "schema": "resources/business_licence.avsc",
            "key": "licence_no",
            "share": "unconditional",
            "fields": dict.fromkeys(licence_fields, "public"),
        }
        for i in range(1, OTHER_RESOURCES + 1)
    ]
    subs = [
        {
            "id": f"other-{i}",
            "subscriber": "tax",
            "resource": f"PD-SOC-{(i % OTHER_RESOURCES) + 1:04d}",
            "hub": "pudong",
            "fields": ["licence_no", "entity_name"],
            "purpose": "bench",
        }
        for i in range(subscriptions)
    ]
    return resources, subs


def read_positions(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    consumer = make_consumer(kafka, "bench-pos", group_id=None)
    parts = consumer.partitions_for_topic(topic) or set()
    ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
    consumer.close()
    return {tp.partition: off for tp, off in ends.items()}


def versus_passthrough(
    kafka: KafkaSettings, n: int, rounds: int, runs: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, Any]:
    """The hub, the passthrough and the policy floor in turns (hub, passthrough, floor, hub ...): the median
    ratios to the passthrough of the same round and their spread.

    ``runs`` collects each run's figures as it ends (the caller keeps them if a later run fails).
    """
    runs = runs if runs is not None else {}
    for kind in ("hub", "passthrough", "floor"):
        runs.setdefault(kind, [])
    for _ in range(rounds):
        runs["hub"].append(hub_throughput(kafka, n))
        fan_out = runs["hub"][-1]["outputs_per_input"]  # the deliveries per input the hub just made
        runs["passthrough"].append(passthrough_throughput(kafka, n, fan_out))
        runs["floor"].append(passthrough_throughput(kafka, n, fan_out, policy_floor=True))
    rate = {kind: [float(r["output_records_per_s"]) for r in done] for kind, done in runs.items()}
    versus = Interleaved(rate["hub"], rate["passthrough"]).summary()
    floor = Interleaved(rate["floor"], rate["passthrough"]).summary()
    return {
        "records": n,
        "rounds": rounds,
        "hub_vs_passthrough_ratio": versus["ratio"],
        "hub_vs_passthrough_spread": [versus["ratio_min"], versus["ratio_max"]],
        "ratios": Interleaved(versus["a"], versus["b"]).ratios,
        "hub_floor_vs_passthrough_ratio": floor["ratio"],
        "hub_floor_vs_passthrough_spread": [floor["ratio_min"], floor["ratio_max"]],
        "hub_vs_floor_ratio": median([h / f for h, f in zip(rate["hub"], rate["floor"], strict=True)]),
        "hub_output_records_per_s": median(rate["hub"]),
        "passthrough_output_records_per_s": median(rate["passthrough"]),
        "floor_output_records_per_s": median(rate["floor"]),
        "hub": runs["hub"],
        "passthrough": runs["passthrough"],
        "floor": runs["floor"],
    }


def main() -> int:
    """``python -m tests.bench.throughput``: the hub-vs-passthrough section alone (XHUB_BENCH_RECORDS,
    XHUB_BENCH_ROUNDS; XHUB_BENCH_PROFILE=1 adds a profiled run to build/bench/hub_profile.txt)."""
    import json
    import os

    from hub.core.log import configure_logging
    from tests.bench.common import OUT

    configure_logging("WARNING")
    kafka = KafkaSettings(bootstrap_servers=os.environ.get("XHUB_TEST_BOOTSTRAP", "127.0.0.1:9092"))
    n = int(os.environ.get("XHUB_BENCH_RECORDS", "5000"))
    rounds = int(os.environ.get("XHUB_BENCH_ROUNDS", "3"))
    OUT.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        result = versus_passthrough(kafka, n, rounds, runs)
    except Exception:
        # the shared broker times out now and then: keep the rounds that finished
        done = min(len(runs["hub"]), len(runs["passthrough"]))
        ratios = [
            h["output_records_per_s"] / p["output_records_per_s"]
            for h, p in zip(runs["hub"][:done], runs["passthrough"][:done], strict=True)
        ]
        (OUT / "throughput.json").write_text(
            json.dumps({"partial": True, "ratios": ratios, **runs}, indent=2)
        )
        print(f"failed after {done} rounds; ratios so far: {', '.join(f'{r:.3f}' for r in ratios)}")
        raise
    if os.environ.get("XHUB_BENCH_PROFILE"):
        hub_throughput(kafka, n, profile_to=str(OUT / "hub_profile.txt"))
    (OUT / "throughput.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    low, high = result["hub_vs_passthrough_spread"]
    ratios = ", ".join(f"{r:.3f}" for r in result["ratios"])
    floor_low, floor_high = result["hub_floor_vs_passthrough_spread"]
    print(
        f"hub_vs_passthrough_ratio {result['hub_vs_passthrough_ratio']:.3f} "
        f"(min {low:.3f}, max {high:.3f}; rounds: {ratios}; {n} records)\n"
        f"hub_floor_vs_passthrough_ratio {result['hub_floor_vs_passthrough_ratio']:.3f} "
        f"(min {floor_low:.3f}, max {floor_high:.3f}): decode + encode + headers alone; "
        f"the hub reaches {result['hub_vs_floor_ratio']:.3f} of that floor"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
