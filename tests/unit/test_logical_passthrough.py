"""The hub's own path leaves logical types as Avro values when no plan needs them converted, and the
deliveries it re-encodes are byte for byte what the converted values gave."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest

from hub.core.registry.client import RegistryClient
from hub.core.registry.serde import AvroSerde
from hub.registry.server import RegistryServer
from hub.registry.store import MemorySchemaStore

WRITER = {
    "type": "record",
    "name": "Licence",
    "namespace": "gov.xhub",
    "fields": [
        {"name": "no", "type": "string"},
        {"name": "issued", "type": {"type": "int", "logicalType": "date"}},
        {"name": "valid_until", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "capital",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        },
    ],
}
READER = {**WRITER, "fields": [*WRITER["fields"], {"name": "extra", "type": "string", "default": "x"}]}
VALUE = {
    "no": "L1",
    "issued": dt.date(2020, 1, 2),
    "valid_until": None,
    "at": dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC),
    "capital": Decimal("1234.50"),
}


@pytest.fixture
def serde() -> Iterator[AvroSerde]:
    server = RegistryServer(MemorySchemaStore())
    server.start()
    yield AvroSerde(RegistryClient(server.url))
    server.stop()


@pytest.mark.parametrize("reader", [None, READER], ids=["as written", "resolved"])
def test_raw_values_reencode_to_the_same_bytes(serde: AvroSerde, reader: dict[str, object] | None) -> None:
    data = serde.encode("licences-value", WRITER, VALUE)
    _, converted = serde.decode(data, reader)
    _, raw = serde.decode(data, reader, logical=False)
    assert converted["issued"] == dt.date(2020, 1, 2)
    assert raw["issued"] == (dt.date(2020, 1, 2) - dt.date(1970, 1, 1)).days
    assert raw["at"] == int(VALUE["at"].timestamp() * 1000)  # type: ignore[attr-defined]
    assert isinstance(raw["capital"], bytes)
    out = {k: v for k, v in raw.items() if k != "extra"}
    assert serde.encode("licences-value", WRITER, out) == data
    # the converted reader is not disturbed by the raw one cached beside it
    assert serde.decode(data, reader)[1] == converted


def test_a_resource_is_read_raw_unless_a_plan_masks_a_logical_field() -> None:
    from hub.config import load_config
    from hub.core.registry.client import RegistryClient as Client
    from hub.engine.policy_set import policy_set_of_config
    from hub.engine.readers import SourceReaders
    from tests.fixtures.plugin import DEMO_CONFIG

    policies = policy_set_of_config(load_config(DEMO_CONFIG), "pudong", secret=b"unit-test-secret-0123456789")
    readers = SourceReaders(AvroSerde(Client("http://127.0.0.1:9")), policies)
    raw = {
        plans[0].resource: not readers._logical[topic] for topic, plans in policies.by_topic.items() if plans
    }
    # housing-persons generalises birth_date (a date) to its year: persons are read with dates converted
    assert raw["PD-POP-0001"] is False
    # the legal entities' subscriptions mask no date: their dates and commit times stay Avro values
    assert raw["PD-ENT-0001"] is True
