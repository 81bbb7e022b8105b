"""The federated demo's checks (hub.demo.federation.summary) on made-up observations: each passes on a
faithful path and fails on the fault it is there to catch (a change lost, one applied twice, a hop
missing from the provenance, a wrong commit time)."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.testing.kafka import Consumed
from hub.core.provenance import Hop, Provenance
from hub.demo.federation.parties import CITY, DISTRICTS
from hub.demo.federation.summary import Observed, exactly_once, provenance, terms_current

PUDONG, XUHUI = DISTRICTS
COMMIT_MS = 1_760_000_000_007


def _case(district: object, n: int) -> str:
    area = "0115" if district is PUDONG else "0104"
    return f"(2025)沪{area}执{n}号"


def _event(key: str, seq: int, dept: str) -> dict[str, object]:
    # As the demo reads a court's topic: timestamp-millis decoded to a datetime.
    commit = datetime.fromtimestamp((COMMIT_MS + seq) / 1000, UTC)
    return {"key": key, "seq": seq, "op": "u", "source": {"dept": dept, "commit_ts_ms": commit}}


def _faithful() -> Observed:
    seen = Observed()
    for d in DISTRICTS:
        changes = {(_case(d, n), seq): _event(_case(d, n), seq, d.court) for n in range(3) for seq in (1, 2)}
        seen.published[d.hub] = changes
        seen.climbed[d.hub] = set(changes)
        seen.receipts += list(changes)
        for key, seq in changes:
            seen.at_city.append(_delivery(key, seq, d.court, [d.hub, CITY]))
    return seen


def _delivery(key: str, seq: int, dept: str, hubs: list[str], commit_ms: int | None = None) -> Consumed:
    prov = Provenance(dept, "enforcement", COMMIT_MS + seq if commit_ms is None else commit_ms, "e-1")
    for i, hub in enumerate(hubs):
        prov = prov.with_hop(Hop(hub, f"{hub}-v1", f"xhub-hub-{hub}-0", i, "s"))
    name, value = prov.header()
    return Consumed("t", 0, 0, None, b"", {"key": key, "seq": seq}, {name: value})


def test_a_faithful_path_passes() -> None:
    seen = _faithful()
    assert all(c.ok for c in exactly_once(seen)), exactly_once(seen)
    assert provenance(seen).ok, provenance(seen)


def test_a_change_lost_on_the_way_fails_exactly_once() -> None:
    seen = _faithful()
    seen.receipts.remove((_case(XUHUI, 1), 2))
    checks = exactly_once(seen)
    assert [c.ok for c in checks] == [True, False, True]
    assert "missing 1" in checks[1].text


def test_a_change_applied_twice_fails_exactly_once() -> None:
    seen = _faithful()
    seen.receipts.append((_case(PUDONG, 0), 1))
    assert not exactly_once(seen)[-1].ok


def test_a_change_the_district_did_not_deliver_fails_exactly_once() -> None:
    seen = _faithful()
    seen.climbed[PUDONG.hub].discard((_case(PUDONG, 2), 1))
    assert not exactly_once(seen)[0].ok


def test_a_missing_hop_or_another_commit_time_fails_provenance() -> None:
    seen = _faithful()
    seen.at_city[0] = _delivery(_case(PUDONG, 0), 1, PUDONG.court, [CITY])
    assert not provenance(seen).ok
    seen = _faithful()
    seen.at_city[0] = _delivery(_case(PUDONG, 0), 1, PUDONG.court, [PUDONG.hub, CITY], commit_ms=COMMIT_MS)
    assert not provenance(seen).ok


def test_the_city_copy_of_the_terms_must_be_the_policy_the_district_delivered_under() -> None:
    seen = _faithful()
    assert terms_current({"pudong": "pudong-v1", "xuhui": "xuhui-v1"}, seen).ok
    assert not terms_current({"pudong": "pudong-v0", "xuhui": "xuhui-v1"}, seen).ok, "a stale copy"
