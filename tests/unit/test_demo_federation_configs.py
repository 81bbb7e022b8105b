"""The federated demo's configs (hub.demo.federation.parties), compiled without a cluster: what each level
lets through is what the demo's summary later checks on the clusters, so the configs must say it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.config import load_config
from hub.config.validation import compile_config
from hub.core.errors import ConfigError
from hub.demo.federation.configs import LINK_SUBSCRIPTION, write_yaml
from hub.demo.federation.parties import (
    CENTRE_FIELDS,
    CITY,
    DISTRICTS,
    centre_subscription,
    district_of_case,
    widening_grant,
    write_city_side,
    write_district_config,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    for hub in ("PUDONG", "XUHUI", "CITY"):
        monkeypatch.setenv(f"XHUB_{hub}_SECRET", f"test-secret-{hub}-0123456789")
    out = {}
    for i, d in enumerate(DISTRICTS):
        out[d.hub] = write_district_config(
            tmp_path / d.hub,
            d,
            bootstrap="127.0.0.1:1",
            admin_port=9000 + i,
            registry_port=9100 + i,
            repo=REPO,
        )
    out[CITY] = write_city_side(
        tmp_path / CITY, dict(out), bootstrap="127.0.0.1:2", admin_port=9200, registry_port=9201
    )
    return out


def test_each_district_lets_its_list_climb_without_the_obligation_and_with_the_id_masked(
    roots: dict[str, Path],
) -> None:
    for d in DISTRICTS:
        plan = compile_config(load_config(roots[d.hub])).plans[LINK_SUBSCRIPTION]
        assert plan.resource == d.resource
        assert plan.refusal is None
        rules = {r.name: r for r in plan.rules}
        assert "obligation" not in rules
        assert rules["debtor_id"].mask is not None
        assert rules["debtor_id"].mask.kind == "id_number"
        assert rules["debtor_name"].mask is None, "the court's grant puts the name in clear for the city"


def test_the_city_narrows_both_lists_for_the_credit_centre(roots: dict[str, Path]) -> None:
    plans = compile_config(load_config(roots[CITY])).plans
    for d in DISTRICTS:
        plan = plans[centre_subscription(d)]
        assert plan.resource == d.resource
        assert plan.refusal is None
        assert plan.source_topic == f"xhub.src.{d.hub}.{d.resource.lower()}", "the link's topic at the city"
        assert [r.name for r in plan.rules] == list(CENTRE_FIELDS), "no publication date at the city"
        rules = {r.name: r for r in plan.rules}
        assert rules["debtor_id"].mask is not None, "masked again at the city"
        assert rules["debtor_name"].mask is None, "in clear by the district hub's grant at the city"


def test_a_city_grant_cannot_put_the_district_masked_id_in_clear(
    roots: dict[str, Path], tmp_path: Path
) -> None:
    wide = tmp_path / "wide"
    shutil.copytree(roots[CITY], wide)
    pudong = DISTRICTS[0]
    write_yaml(wide / "grants" / pudong.hub / "credit.yaml", {"grants": [widening_grant(pudong)]})
    with pytest.raises(
        ConfigError, match=r'field "debtor_id" arrives masked \(id_number\) from district hub pudong'
    ):
        compile_config(load_config(wide))


def test_a_case_number_names_its_district() -> None:
    assert district_of_case("(2024)沪0115执12345号").hub == "pudong"
    assert district_of_case("(2024)沪0104执12345号").hub == "xuhui"
    with pytest.raises(ValueError, match="of no court"):
        district_of_case("(2024)沪0101执1号")
