"""Federation (issue 17 point 1): a hub link carries a district hub's deliveries to the city cluster.

The clusters, the district hub, the city config and the court's stream are in federation_support (shared
with the other federation tests): the district on port 19192, the city on 19292.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from kafka import TopicPartition

from connectors.testing.kafka import TopicReader
from connectors.testing.runtime import SidecarProcess, running_sidecar, serde_for
from hub.core.kafka import make_consumer, make_producer
from tests.fixtures.hubkit import read_all
from tests.integration.federation_support import (
    City,
    Court,
    District,
    assert_carried_exactly_once,
    at_least,
    city,
    city_registry,
    clusters,
    district,
    read_city,
)

pytestmark = pytest.mark.kafka
__all__ = ["city", "city_registry", "clusters", "district"]  # fixtures, used by name

# --- the tests --------------------------------------------------------------------------------------


def test_district_deliveries_reach_the_city_source_topic_exactly_once_in_order(
    district: District, city: City
) -> None:
    court = Court(district)
    court.rounds(keys=40, rounds=6)
    court.close()
    expected = len(court.sent)
    delivered = read_all(district.kafka, district.delivery_topic, expect=expected, timeout=60)
    assert len(delivered) == expected, "the district hub delivers every change to the link"
    with running_sidecar(city.connector):
        records = read_city(city, city.source_topic, expected)
    assert_carried_exactly_once(court, city, records, expected)
    assert not read_all(city.kafka, city.dead_letter_topic, idle=0.5), "nothing dead-lettered"


@pytest.mark.slow
def test_sigkill_of_the_link_during_the_stream_loses_and_repeats_nothing(
    district: District, city: City, tmp_path: Path
) -> None:
    court = Court(district)
    stream = threading.Thread(
        target=court.rounds, kwargs={"keys": 50, "rounds": 12, "every_s": 0.025}, daemon=True
    )
    link = SidecarProcess(city.connector, tmp_path / "link.log")
    link.start()
    link.wait_started(60)
    stream.start()
    reader = TopicReader(city.kafka, [city.source_topic], serde_for(city.registry_url))
    jitter = random.Random(17)
    kills = 0
    try:
        while kills < 4 and stream.is_alive():
            carried = len(reader.records)
            # only once the link carries again since its last start: a kill mid-batch, not mid-start
            reader.read_until(at_least(carried + 20), timeout_s=60)
            assert len(reader.records) >= carried + 20, f"the link stalled after {kills} kills"
            time.sleep(jitter.uniform(0, 0.3))  # anywhere in its cycle of poll, send, commit
            link.kill()
            kills += 1
            link.start()
            link.wait_started(60)
        stream.join(120)
        assert not stream.is_alive()
        court.close()
        expected = len(court.sent)
        reader.read_until(at_least(expected), timeout_s=90)
        records = reader.read_quiet(quiet_s=3.0)
    finally:
        reader.close()
        code = link.terminate() if link.alive() else 0
    assert kills >= 3, f"only {kills} SIGKILLs happened during the stream"
    assert code == 0, f"the link did not stop cleanly (log: {link.log_path})"
    assert_carried_exactly_once(court, city, records, expected)
    # For the record (-s): how many records of transactions the kills cut short the brokers hold, aborted.
    print(f"{kills} kills; {_written(city) - expected} records of aborted link transactions at the city")


def _written(city: City) -> int:
    """Records written to the city source topic, committed or not (read_uncommitted, control records
    excluded)."""
    consumer = make_consumer(
        city.kafka, "test-uncommitted", group_id=None, isolation_level="read_uncommitted"
    )
    try:
        tps = [TopicPartition(city.source_topic, p) for p in consumer.partitions_for_topic(city.source_topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        count = 0
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            count += sum(len(records) for records in consumer.poll(timeout_ms=300).values())
        return count
    finally:
        consumer.close()


def test_a_record_the_city_cannot_take_is_dead_lettered_with_its_bytes(
    district: District, city: City
) -> None:
    court = Court(district)
    court.rounds(keys=10, rounds=2)
    court.publish(999, "c", debtor_type="entity")  # the district delivers it; the city takes persons only
    court.rounds(keys=10, rounds=1)
    court.close()
    delivered_count = len(court.sent)
    garbage = b"not a change event at all"
    stray = make_producer(district.kafka, "test-stray")
    stray.send(district.delivery_topic, key=b"stray", value=garbage).get(30)
    stray.close()
    delivered = read_all(district.kafka, district.delivery_topic, expect=delivered_count + 1, timeout=60)
    by_origin = {f"{r.topic}-{r.partition}@{r.offset}": r.value for r in delivered}

    with running_sidecar(city.connector):
        letters = read_city(city, city.dead_letter_topic, 2)
        records = read_city(city, city.source_topic, delivered_count - 1)

    reasons = {letter.value["reason"]: letter.value for letter in letters}
    assert set(reasons) == {"wrong_type", "bad_wire_format"}, reasons
    refused = reasons["wrong_type"]
    assert refused["field"] == "debtor_type"
    assert refused["original"] == by_origin[refused["origin"]], "the bytes as the district delivered them"
    assert serde_for(district.hub.registry_url).decode(refused["original"])[1]["key"] == "(2025)沪0115执999号"
    assert reasons["bad_wire_format"]["original"] == garbage
    assert all(dict(letter.headers)["xhub.reason"] for letter in letters)
    court.sent = {k: v for k, v in court.sent.items() if k[0] != "(2025)沪0115执999号"}
    assert_carried_exactly_once(court, city, records, delivered_count - 1)
