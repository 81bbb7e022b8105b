"""Federation faults (issue 17 point 5) on the two clusters, during a stream, end to end: the court
publishes at the district, the district hub delivers to the link, the link (a sidecar process) carries
to the city cluster, the city hub delivers to its subscriber, whose sidecar (another process) applies to
an SQLite table with a receipt log in the same transaction.

- the district cluster stopped for 30 s (the court pauses: its own cluster is down too);
- the city cluster stopped for 30 s (the court keeps publishing: the link's backlog grows);
- the link's subscription revoked at the district (removed from its config and applied).

`make test` runs both outages 5 s long; the 30 s ones are marked chaos (`make chaos`).

Each time every change the district delivered is applied once at the city subscriber, none twice,
none else; after the revoke, nothing published later climbs. The clusters are those of
federation_support (stopped and started here with kafka.sh, data kept).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from connectors.testing.runtime import SidecarProcess, serde_for
from hub.app import HubProcess
from tests.fixtures.brokers import kafka_sh
from tests.fixtures.hubkit import apply_config, read_all, wait_for
from tests.integration.federation_support import (
    CITY_PORT,
    DISTRICT_PORT,
    SUBSCRIPTION,
    City,
    Court,
    District,
    SubscriberTable,
    assert_applied_exactly_once,
    city,
    city_hub,
    city_registry,
    city_table,
    clusters,
    district,
    link_on_status_page,
    link_status,
    secure_clusters,
)

pytestmark = pytest.mark.kafka
__all__ = ["city", "city_hub", "city_registry", "clusters", "district"]  # fixtures, used by name

# The outages: 30 s with `make chaos` (-m chaos); `make test` runs a short form of each (5 s: the same
# stop and start, within the clients' request timeouts).
OUTAGES = [pytest.param(5.0, id="5s"), pytest.param(30.0, id="30s", marks=pytest.mark.chaos)]
FLOWING = 60  # changes applied at the city subscriber before the fault: the path runs end to end
CATCH_UP_S = 240.0  # longest wait for the path to drain after the fault (restarts, fencing, retries)


@contextmanager
def federation_path(city: City, workdir: Path) -> Iterator[SubscriberTable]:
    """The link and the city subscriber's sidecar, as processes, while the block runs; each must stop
    cleanly (SIGTERM) at the end."""
    table = city_table(city, workdir)
    link = SidecarProcess(city.connector, workdir / "link.log")
    sink = SidecarProcess(table.connector, workdir / "subscriber.log")
    link.start()
    sink.start()
    try:
        link.wait_started(60)
        sink.wait_started(60)
        yield table
    finally:
        codes = {p.log_path.name: p.terminate() for p in (link, sink) if p.alive()}
    assert all(code == 0 for code in codes.values()), f"a sidecar did not stop cleanly: {codes} in {workdir}"


def stream(court: Court, *, rounds: int, gate: threading.Event | None = None) -> threading.Thread:
    """The court's steady stream (40 keys, ``rounds`` rounds) in a thread, started."""
    thread = threading.Thread(
        target=court.rounds, kwargs={"keys": 40, "rounds": rounds, "every_s": 0.03, "gate": gate}, daemon=True
    )
    thread.start()
    return thread


def outage(port: int, seconds: float) -> None:
    """Stop the cluster on ``port`` (SIGTERM, as an operator or a host would) for ``seconds``, then start
    it on the same data."""
    kafka_sh(port, "down")
    time.sleep(seconds)
    kafka_sh(port, "up")


def drained(
    court: Court, thread: threading.Thread, table: SubscriberTable, expected: int | None = None
) -> None:
    """Wait for the stream's end and for ``expected`` (default: every change sent) receipts at the table,
    then a quiet while in which a late repeat would show."""
    thread.join(180)
    assert not thread.is_alive(), "the court's stream did not end"
    court.close()
    count = len(court.sent) if expected is None else expected
    wait_for(lambda: len(table.receipts()) >= count, CATCH_UP_S, f"{count} changes at the city subscriber")
    time.sleep(3.0)


def link_seen_recovered(city_hub: HubProcess, city: City) -> None:
    """The operators see the link back on the city hub's status page: running, OK, nothing waiting.

    Waited for, not read once: the link reports its state every few seconds (a report made during the
    outage may arrive after the data) and the page refreshes on a cycle of its own.
    """
    seen: list[dict[str, object] | None] = [None]

    def recovered() -> bool:
        seen[0] = link_on_status_page(city_hub, city.dept)
        return seen[0] is not None and (seen[0]["state"], seen[0]["status"]) == ("running", "OK")

    try:
        wait_for(recovered, 90, "the link running, OK and with nothing waiting on the status page")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen[0]}") from None


@pytest.mark.slow
@pytest.mark.parametrize("outage_s", OUTAGES)
def test_the_district_cluster_stopped_mid_stream_loses_and_repeats_nothing(
    district: District, city: City, city_hub: HubProcess, tmp_path: Path, outage_s: float
) -> None:
    court = Court(district)
    gate = threading.Event()
    gate.set()
    with federation_path(city, tmp_path) as table:
        thread = stream(court, rounds=8, gate=gate)
        wait_for(lambda: len(table.receipts()) >= FLOWING, 120, "the stream at the city subscriber")
        assert thread.is_alive(), "the stream ended before the outage"
        gate.clear()  # the court's sidecar cannot publish on its stopped cluster either
        time.sleep(0.1)
        court.producer.flush()
        outage(DISTRICT_PORT, outage_s)
        gate.set()
        drained(court, thread, table)
        link_seen_recovered(city_hub, city)
    assert_applied_exactly_once(table, court.sent)


@pytest.mark.slow
@pytest.mark.parametrize("outage_s", OUTAGES)
def test_the_city_cluster_stopped_mid_stream_loses_and_repeats_nothing(
    district: District, city: City, city_hub: HubProcess, tmp_path: Path, outage_s: float
) -> None:
    court = Court(district)
    with federation_path(city, tmp_path) as table:
        thread = stream(court, rounds=12)  # it outlasts the outage: the link's backlog grows meanwhile
        wait_for(lambda: len(table.receipts()) >= FLOWING, 120, "the stream at the city subscriber")
        assert thread.is_alive(), "the stream ended before the outage"
        outage(CITY_PORT, outage_s)
        drained(court, thread, table)
        link_seen_recovered(city_hub, city)
    assert_applied_exactly_once(table, court.sent)


def test_a_revoked_link_subscription_stops_the_climb_and_what_climbed_arrives_once(
    district: District, city: City, city_hub: HubProcess, tmp_path: Path
) -> None:
    court = Court(district)
    with federation_path(city, tmp_path) as table:
        thread = stream(court, rounds=20)  # it outlasts the apply and the install of the revoke
        wait_for(lambda: len(table.receipts()) >= FLOWING, 120, "the stream at the city subscriber")
        # The district withdraws the city's subscription: its file removed, the config applied again
        # (on secure clusters that also removes the link's READ on its delivery topic there).
        (district.root / "subscriptions" / district.link / "credit.yaml").unlink()
        apply_config(district.root)
        policies = district.hub.worker.live
        wait_for(
            lambda: SUBSCRIPTION not in policies.policies.plans, 60, "the revoke installed at the district"
        )
        revoked_after = court.seq  # every later change was published under the new policy
        thread.join(180)
        later = court.seq - revoked_after
        court.close()
        delivered = district_deliveries(district)
        if secure_clusters():  # the link lost its READ: it carries what it read before, then nothing
            settled(table, quiet_s=8.0)
            # The city's operators see it: the link cannot read its district topic (not "drained").
            wait_for(lambda: _shown_stopped(city_hub, city), 60, "the revoked link shown as stopped")
            link = link_status(city_hub, city.dept)
            assert link is not None
            assert district.delivery_topic in link["reason"], link
            assert "revoked" in link["reason"], link
        else:  # no ACLs: the link could still read, but nothing comes
            drained(court, thread, table, expected=sum(len(d) for d in delivered.values()))
    assert later >= 40, f"only {later} changes published after the revoke"
    assert all(seq <= revoked_after for d in delivered.values() for _, seq in d), "delivered after the revoke"
    carried = set(table.receipts())
    for partition, changes in delivered.items():  # the link reads each partition in order: a prefix
        climbed = [change in carried for change in changes]
        assert climbed == sorted(climbed, reverse=True), f"a gap in what climbed from partition {partition}"
    everything = {change for changes in delivered.values() for change in changes}
    if not secure_clusters():
        assert carried == everything, "what the district delivered before the revoke arrives"
    assert_applied_exactly_once(table, {k: v for k, v in court.sent.items() if k in carried & everything})


def _shown_stopped(city_hub: HubProcess, city: City) -> bool:
    link = link_status(city_hub, city.dept)
    return link is not None and link["status"] == "STOP"


def district_deliveries(district: District) -> dict[int, list[tuple[str, int]]]:
    """The district's deliveries to the link, (key, seq) per partition in offset order."""
    serde = serde_for(district.hub.registry_url)
    out: dict[int, list[tuple[str, int]]] = {}
    for record in sorted(read_all(district.kafka, district.delivery_topic), key=lambda r: r.offset):
        event = serde.decode(record.value, logical=False)[1]
        out.setdefault(record.partition, []).append((event["key"], event["seq"]))
    return out


def settled(table: SubscriberTable, quiet_s: float) -> None:
    """Wait until nothing more is applied at ``table`` for ``quiet_s``."""
    count, since = len(table.receipts()), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = len(table.receipts())
        if now != count:
            count, since = now, time.monotonic()
