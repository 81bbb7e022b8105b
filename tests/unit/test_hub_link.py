"""The hub link's pure parts: its position on the district topic, and a delivered record -> a change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.config import load_connector_config
from connectors.runtime.events import EventBuilder
from connectors.sources import HubLinkSourceConfig, ResourceSpec
from connectors.sources.hub_link.position import LinkPosition
from connectors.sources.hub_link.records import KEY_MISMATCH, captured_of
from connectors.testing.catalog import write_catalog
from connectors.testing.records import RESOURCE
from hub.config import load_config
from hub.config.linked import TERMS_FORMAT
from hub.core.dead_letters import NOT_A_CHANGE_EVENT
from hub.core.envelope import ChangeEvent, change_event_schema
from hub.core.errors import ConfigError, FatalError, InvalidRecord
from hub.core.provenance import Hop, Provenance, from_headers
from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.provision.acls import desired_acls
from hub.registry.server import RegistryServer
from hub.registry.store import MemorySchemaStore

TOPIC = "xhub.dlv.pudong.city-debtors"
DEBTOR = {
    "type": "record",
    "name": "Debtor",
    "namespace": "test",
    "fields": [
        {"name": "case_no", "type": "string"},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["open", "closed"]}},
        {"name": "publish_date", "type": {"type": "int", "logicalType": "date"}},
    ],
}


@dataclass
class _Record:
    """What the link reads of a ConsumerRecord."""

    value: bytes | None
    topic: str = TOPIC
    partition: int = 1
    offset: int = 41
    headers: tuple[tuple[str, bytes], ...] = ()


@pytest.fixture
def serde() -> Iterator[AvroSerde]:
    server = RegistryServer(MemorySchemaStore(), port=0)
    server.start()
    yield AvroSerde(RegistryClient(server.url))
    server.stop()


def _delivered(serde: AvroSerde, op: str, key: str, data: dict[str, Any] | None, seq: int = 7) -> bytes:
    event = ChangeEvent("PD-CRD-0001", op, key, seq, "court", "enforcement", 1_700_000_000_123, data)  # type: ignore[arg-type]
    return serde.encode(f"{TOPIC}-value", change_event_schema("PD-CRD-0001", DEBTOR), event.to_avro())


# --- position -------------------------------------------------------------------------------------


def test_a_link_that_never_committed_reads_every_partition_from_its_beginning() -> None:
    assert LinkPosition.of(None, TOPIC, source="link").offsets == {}


def test_the_position_is_the_next_offset_per_partition_and_survives_json() -> None:
    at = LinkPosition(TOPIC).advanced({0: 9, 2: 0}).advanced({0: 11})
    assert at.offsets == {0: 12, 2: 1}
    stored = at.to_json()
    assert stored == {"topic": TOPIC, "offsets": {"0": 12, "2": 1}}
    assert LinkPosition.of(stored, TOPIC, source="link") == at


def test_a_position_never_moves_back() -> None:
    assert LinkPosition(TOPIC, {0: 12}).advanced({0: 3}).offsets == {0: 12}


def test_a_position_on_another_topic_needs_an_operator() -> None:
    stored = LinkPosition("xhub.dlv.xuhui.city-debtors", {0: 5}).to_json()
    with pytest.raises(ConfigError, match="give the source a new name"):
        LinkPosition.of(stored, TOPIC, source="link")


@pytest.mark.parametrize("stored", [17, {"topic": TOPIC}, {"topic": TOPIC, "offsets": {"0": "x"}}])
def test_a_value_that_is_no_link_position_is_fatal(stored: Any) -> None:
    with pytest.raises(FatalError):
        LinkPosition.of(stored, TOPIC, source="link")


# --- records --------------------------------------------------------------------------------------


def test_a_delivery_keeps_op_key_seq_and_the_source_commit_time(serde: AvroSerde) -> None:
    raw = _delivered(
        serde,
        "u",
        "(2025)沪0115执1号",
        {"case_no": "(2025)沪0115执1号", "status": "open", "publish_date": 20000},
    )
    change = captured_of(_Record(raw), serde, resource="PD-CRD-0001", key_field="case_no")
    assert change is not None
    assert change.rejected is None
    assert (change.op, change.key, change.seq, change.commit_ts_ms) == (
        "u",
        "(2025)沪0115执1号",
        7,
        1_700_000_000_123,
    )
    assert change.data == {
        "case_no": "(2025)沪0115执1号",
        "status": "open",
        "publish_date": 20000,
    }  # days, as written
    assert change.origin == f"{TOPIC}-1@41"
    assert change.original == raw


def test_the_district_provenance_is_carried_on_with_the_delivery_record_it_came_in(
    serde: AvroSerde,
) -> None:
    hop = Hop("pudong", "v1", "xhub-hub-pudong-0", 42, "city-debtors")
    district = Provenance("court", "enforcement", 1_700_000_000_123, "e-1", (hop,))
    raw = _delivered(serde, "d", "K1", None)
    change = captured_of(
        _Record(raw, headers=(district.header(),)), serde, resource="PD-CRD-0001", key_field="case_no"
    )
    assert change is not None
    carried = from_headers(change.headers)
    assert carried == district.carried_at(f"{TOPIC}-1@41")
    assert carried is not None
    assert carried.hops[-1].carried == f"{TOPIC}-1@41"
    without = captured_of(_Record(raw), serde, resource="PD-CRD-0001", key_field="case_no")
    assert without is not None
    assert without.headers == ()


def test_a_delete_carries_its_key(serde: AvroSerde) -> None:
    change = captured_of(
        _Record(_delivered(serde, "d", "K1", None)), serde, resource="PD-CRD-0001", key_field="case_no"
    )
    assert change is not None
    assert (change.op, change.key, change.data) == ("d", "K1", None)


def test_a_tombstone_carries_nothing(serde: AvroSerde) -> None:
    assert captured_of(_Record(None), serde, resource="PD-CRD-0001", key_field="case_no") is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"no wire format", "bad_wire_format"), (b"\x00\x00\x00\x7f\xff\x01", "unknown_schema_id")],
)
def test_undecodable_bytes_are_rejected_with_their_bytes(serde: AvroSerde, raw: bytes, reason: str) -> None:
    change = captured_of(_Record(raw), serde, resource="PD-CRD-0001", key_field="case_no")
    assert change is not None
    assert change.rejected is not None
    assert change.rejected.reason == reason
    assert change.original == raw
    assert change.resource == "PD-CRD-0001"


def test_a_value_that_is_no_change_event_is_rejected(serde: AvroSerde) -> None:
    raw = serde.encode(f"{TOPIC}-value", DEBTOR, {"case_no": "K", "status": "open", "publish_date": 1})
    change = captured_of(_Record(raw), serde, resource="PD-CRD-0001", key_field="case_no")
    assert change is not None
    assert change.rejected is not None
    assert change.rejected.reason == NOT_A_CHANGE_EVENT


def test_a_pseudonymised_key_cannot_become_the_city_key(serde: AvroSerde) -> None:
    raw = _delivered(
        serde, "c", "5d1c0e9a", {"case_no": "(2025)沪0115执1号", "status": "open", "publish_date": 1}
    )
    change = captured_of(_Record(raw), serde, resource="PD-CRD-0001", key_field="case_no")
    assert change is not None
    assert change.rejected is not None
    assert change.rejected.reason == KEY_MISMATCH
    assert change.rejected.field == "case_no"
    assert "(2025)" not in change.rejected.detail, "no key value in the reason"


def test_a_change_the_city_schema_refuses_is_dead_lettered_with_the_delivered_bytes(serde: AvroSerde) -> None:
    city = {
        **DEBTOR,
        "fields": [
            DEBTOR["fields"][0],
            {"name": "status", "type": {"type": "enum", "name": "S", "symbols": ["open"]}},
            DEBTOR["fields"][2],
        ],
    }
    builder = EventBuilder(
        dept="pudong",
        system="link",
        resources={"PD-CRD-0001": ResourceSpec("PD-CRD-0001", city, "case_no")},
        serde=serde,
        max_record_bytes=64 * 1024,
    )
    raw = _delivered(serde, "c", "K1", {"case_no": "K1", "status": "closed", "publish_date": 1})
    change = captured_of(_Record(raw), serde, resource="PD-CRD-0001", key_field="case_no")
    assert change is not None
    with pytest.raises(InvalidRecord) as info:
        builder.event(change)
    letter = builder.dead_letter(change, info.value)
    _, value = serde.decode(letter.value)
    assert value["reason"] == "wrong_type"
    assert value["field"] == "status"
    assert value["original"] == raw, "the bytes as the district delivered them"
    assert value["origin"] == f"{TOPIC}-1@41"


# --- config ---------------------------------------------------------------------------------------


def _link_config(tmp_path: Path, district: str, *, linked_from: str = "city-enrolees") -> Path:
    root = write_catalog(
        tmp_path / "city", "pudong", bootstrap="127.0.0.1:19292", registry_url="http://127.0.0.1:8083"
    )
    # The city knows the resource as linked from the district's subscription, whose terms it keeps.
    catalog = yaml.safe_load((root / "catalog" / "test.yaml").read_text(encoding="utf-8"))
    catalog["resources"][0]["linked_from"] = {
        "hub": "pudong",
        "subscription": linked_from,
        "terms": "linked/terms.json",
    }
    (root / "catalog" / "test.yaml").write_text(yaml.safe_dump(catalog, allow_unicode=True), "utf-8")
    terms = {
        "format": TERMS_FORMAT,
        "hub": "pudong",
        "subscription": linked_from,
        "resource": RESOURCE,
        "policy_version": "v1",
        "fields": {name: {"mask": None} for name in catalog["resources"][0]["fields"]},
        "withheld": {},
    }
    (root / "linked").mkdir()
    (root / "linked" / "terms.json").write_text(json.dumps(terms), "utf-8")
    path = tmp_path / "link.yaml"
    path.write_text(
        f"""\
department: pudong
catalog: city
sources:
  - name: pudong-enrolees
    type: hub_link
    resource: {RESOURCE}
    district:
{district}""",
        encoding="utf-8",
    )
    return path


def test_a_link_config_names_the_district_side_with_its_own_identity(tmp_path: Path) -> None:
    district = """\
      hub: pudong
      subscription: city-enrolees
      registry_url: http://127.0.0.1:8081
      kafka: {bootstrap_servers: "127.0.0.1:19192", security_protocol: SSL, ssl_certfile: link.pem}
"""
    loaded = load_connector_config(_link_config(tmp_path, district))
    (source,) = loaded.config.sources
    assert isinstance(source, HubLinkSourceConfig)
    assert source.district.topic == "xhub.dlv.pudong.city-enrolees"
    assert source.district.kafka.ssl_certfile == "link.pem"
    assert loaded.kafka.bootstrap_servers == "127.0.0.1:19292", "events, dead letters, position: the city"
    assert loaded.resources[RESOURCE].terms_version == "v1", "the district policy the city checked"


def test_a_link_carries_only_the_linked_resource_of_its_district_subscription(tmp_path: Path) -> None:
    district = """\
      hub: pudong
      subscription: city-enrolees
      registry_url: http://127.0.0.1:8081
      kafka: {bootstrap_servers: "127.0.0.1:19192"}
"""
    with pytest.raises(ConfigError) as info:
        load_connector_config(_link_config(tmp_path, district, linked_from="city-other"))
    text = "\n".join(str(p) for p in info.value.problems)
    assert "link.yaml:7 at sources[0].district" in text, text
    assert "linked from hub pudong, subscription city-other" in text


def test_a_bad_district_side_is_reported_with_file_line_and_path(tmp_path: Path) -> None:
    district = """\
      hub: Pudong Hub
      subscription: city-enrolees
      registry_url: ftp://x
"""
    with pytest.raises(ConfigError) as info:
        load_connector_config(_link_config(tmp_path, district))
    text = "\n".join(str(p) for p in info.value.problems)
    assert "link.yaml:8 at sources[0].district.hub" in text, text
    assert "sources[0].district.registry_url" in text
    assert 'required key "kafka" is missing' in text


def test_the_link_has_an_identity_per_cluster_and_each_cluster_lets_it_do_its_part(tmp_path: Path) -> None:
    """District: the link's subscriber may read its delivery topic (nothing to write, no group). City:
    the district hub, as a department, may write its source topics, dead letters and positions."""
    registry = "http://127.0.0.1:8081"
    district = load_config(
        write_catalog(
            tmp_path / "d", "court", bootstrap="d:9093", registry_url=registry, subscriber="citylink"
        )
    )
    city = load_config(write_catalog(tmp_path / "c", "pudong", bootstrap="c:9093", registry_url=registry))
    now = datetime.now(UTC)

    def granted(cfg: Any, principal: str) -> set[tuple[str, str, str]]:
        return {(a.resource, a.name, a.operation) for a in desired_acls(cfg, now) if a.principal == principal}

    assert ("TOPIC", "xhub.dlv.testhub.citylink-enrolees", "READ") in granted(district, "User:citylink")
    on_city = granted(city, "User:pudong")
    assert {
        ("TOPIC", "xhub.src.pudong.", "WRITE"),
        ("TOPIC", "xhub.dlq.pudong", "WRITE"),
        ("TOPIC", "xhub.pos.pudong", "WRITE"),
        ("TOPIC", "xhub.pos.pudong", "READ"),
        ("TOPIC", "xhub.backlog.pudong", "WRITE"),
        ("TRANSACTIONAL_ID", "xhub-src-pudong-", "WRITE"),
    } <= on_city


# --- backlog: the link's hop in `xhub lag` -----------------------------------------------------------


def test_the_link_reports_what_waits_on_the_district_topic_as_its_backlog() -> None:
    from types import SimpleNamespace

    from connectors.runtime.backlog import BacklogReporter
    from connectors.runtime.metrics import SidecarMetrics
    from hub.core.kafka_settings import KafkaSettings

    health = {"state": "running", "backlog_rows": 12, "backlog_oldest_commit_ms": 1_700_000_000_123}
    link = SimpleNamespace(
        source=SimpleNamespace(kind="hub_link", name="pudong-debtors", resources=["PD-CRD-0001"]),
        status=lambda: health,
    )
    reporter = BacklogReporter(
        "pudong",
        KafkaSettings(bootstrap_servers="unused:9092"),
        [link],
        SidecarMetrics(),  # type: ignore[list-item]
    )
    backlog = reporter.measure().sources["pudong-debtors"]
    assert (backlog.kind, backlog.rows, backlog.oldest_commit_ms) == ("hub_link", 12, 1_700_000_000_123)
    health.update(backlog_rows=None, backlog_oldest_commit_ms=None)  # not fetched yet: not counted
    assert reporter.measure().sources["pudong-debtors"].rows is None
    assert reporter.measure().sources["pudong-debtors"].error is None
    # It cannot read its district topic (revoked): not counted, and the operators are told why.
    health.update(state="retrying", last_error="SourceUnavailable: ... may not read it ... revoked?")
    assert reporter.measure().sources["pudong-debtors"].error == health["last_error"]


def test_the_link_warns_when_the_district_delivers_under_other_terms_than_the_city_checked() -> None:
    from connectors.sources.hub_link import HubLinkSource
    from connectors.testing.records import KEY_FIELD, SCHEMA

    config = HubLinkSourceConfig.model_validate(
        {
            "name": "pudong-enrolees",
            "resource": RESOURCE,
            "district": {
                "hub": "pudong",
                "subscription": "city-enrolees",
                "registry_url": "http://127.0.0.1:1",
                "kafka": {"bootstrap_servers": "127.0.0.1:1"},
            },
        }
    )
    spec = ResourceSpec(RESOURCE, SCHEMA, KEY_FIELD, terms_version="v1")
    source = HubLinkSource(config, resources={RESOURCE: spec})
    source._check_terms(_Record(None, headers=(("xhub.policy_version", b"v1"),)))
    assert "warnings" not in source.health()
    source._check_terms(_Record(None, headers=(("xhub.policy_version", b"v2"),)))
    [warning] = source.health()["warnings"]
    assert "district policy v2, the city's terms copy is of v1" in warning
