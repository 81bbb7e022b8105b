"""Issue 17 point 2: a city config's linked resources can only narrow what the district let climb.

The district's published terms (``xhub plan --terms``) are compiled from a real district config (the
demo, with the link's subscription and the court's grant to it); the city config keeps a copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.config import load_config
from hub.config.linked import UpstreamTerms, linked_problems
from hub.config.models import Grant, Resource
from hub.core.errors import ConfigError
from tests.fixtures.federation import (
    LINK_SUBSCRIPTION,
    RESOURCE,
    add_link_subscription,
    district_terms,
    write_city_config,
)
from tests.fixtures.plugin import DEMO_CONFIG

CITY_SUBSCRIBER = {"id": "credit-centre", "name": "市公共信用信息服务中心"}


@pytest.fixture
def terms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The court masks the debtor's ID for the city (its grant's minimum), lets the name climb in clear."""
    monkeypatch.setenv("XHUB_PUDONG_SECRET", "test-secret-pudong-0123456789")
    root = tmp_path / "district"
    shutil.copytree(DEMO_CONFIG, root)
    grant = {
        "clear": ["debtor_name"],
        "min_masks": {"debtor_id": "pseudonym"},
        "legal_basis": "《关于对失信被执行人实施联合惩戒的合作备忘录》",
    }
    add_link_subscription(root, link="citylink", hub="pudong", court="court", grant=grant)
    return district_terms(root)


def _city(tmp_path: Path, terms: dict[str, Any], grant: dict[str, Any], **kwargs: Any) -> Path:
    sub = {
        "id": "centre-debtors",
        "subscriber": "credit-centre",
        "resource": RESOURCE,
        "hub": "city",
        "fields": ["case_no", "debtor_id", "debtor_name", "court"],
        "purpose": "信用联动奖惩: the city's merged list of dishonest debtors",
    }
    answer = {"subscription": "centre-debtors", "resource": RESOURCE, "decision": "approved"}
    answer |= {"approver": "浦东新区共享交换枢纽", "decided_at": "2026-10-02T10:00:00+08:00"} | grant
    return write_city_config(
        tmp_path / "city",
        dept="pudong-hub",
        hub="city",
        district_hub="pudong",
        bootstrap="127.0.0.1:1",
        registry_url="http://127.0.0.1:1",
        departments=[CITY_SUBSCRIBER],
        subscriptions=[sub],
        grants=[answer],
        terms=terms,
        **kwargs,
    )


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    return [str(p) for p in caught.value.problems]


def test_the_district_publishes_what_climbs_and_where_each_mask_was_set(terms: dict[str, Any]) -> None:
    assert terms["hub"] == "pudong"
    assert terms["subscription"] == LINK_SUBSCRIPTION
    assert "obligation" not in terms["fields"]
    assert terms["fields"]["debtor_id"]["mask"] == "pseudonym"
    assert terms["fields"]["debtor_id"]["set_by"].startswith("grants/court/citylink.yaml:")
    assert terms["fields"]["debtor_name"]["mask"] is None
    assert terms["fields"]["case_no"] == {"mask": None, "set_by": None}


def test_a_city_grant_that_narrows_passes(tmp_path: Path, terms: dict[str, Any]) -> None:
    root = _city(tmp_path, terms, {"min_masks": {"debtor_name": "name"}, "fields": ["case_no", "debtor_id"]})
    cfg = load_config(root)
    linked = cfg.resources[RESOURCE].linked_from
    assert linked is not None
    assert (linked.hub, linked.subscription) == ("pudong", LINK_SUBSCRIPTION)


def test_a_city_grant_in_clear_of_a_field_the_district_masked_names_the_district_grant(
    tmp_path: Path, terms: dict[str, Any]
) -> None:
    root = _city(tmp_path, terms, {"clear": ["debtor_id"], "legal_basis": "市级规定"})
    problems = _problems(root)
    assert len(problems) == 1, problems
    [problem] = problems
    assert problem.startswith("grants/pudong-hub/credit.yaml:")
    assert 'field "debtor_id" arrives masked (pseudonym) from district hub pudong' in problem
    assert "grants/court/citylink.yaml:" in problem
    assert "min_masks.debtor_id" in problem


def test_a_city_grant_of_a_field_the_district_withheld_says_it_does_not_exist_upstream(
    tmp_path: Path, terms: dict[str, Any]
) -> None:
    root = _city(tmp_path, terms, {"fields": ["case_no", "obligation"]})
    problems = [p for p in _problems(root) if "upstream" in p]
    assert len(problems) == 1, problems
    assert problems[0].startswith("grants/pudong-hub/credit.yaml:")
    assert 'field "obligation" does not exist upstream: district hub pudong withholds it' in problems[0]


def test_a_city_schema_wider_than_what_climbs_and_a_terms_copy_of_another_link_are_refused(
    tmp_path: Path, terms: dict[str, Any]
) -> None:
    from tests.fixtures.federation import DEBTOR_SCHEMA

    other = {**terms, "subscription": "someone-else"}
    problems = _problems(_city(tmp_path, other, {}, schema=DEBTOR_SCHEMA))
    assert any(
        p.startswith("catalog/linked-pudong.yaml:") and 'field "obligation" does not exist upstream' in p
        for p in problems
    ), problems
    assert any('terms copy is of subscription "someone-else"' in p for p in problems), problems


def test_a_missing_terms_copy_is_an_error_at_linked_from(tmp_path: Path, terms: dict[str, Any]) -> None:
    root = _city(tmp_path, terms, {})
    (root / "linked" / "pudong-city-debtors.json").unlink()
    problems = _problems(root)
    assert any("linked_from.terms" in p and "not found" in p for p in problems), problems


def test_linked_problems_is_pure_and_checks_every_grant_role() -> None:
    terms = UpstreamTerms.of(
        {
            "format": "xhub.delivery-terms/1",
            "hub": "pudong",
            "subscription": LINK_SUBSCRIPTION,
            "resource": RESOURCE,
            "policy_version": "v1",
            "fields": {"case_no": {"mask": None}, "debtor_id": {"mask": "id_number", "set_by": "g.yaml:3"}},
            "withheld": {"obligation": {"why": "not granted", "set_by": "g.yaml:2 fields"}},
        }
    )
    res = Resource.model_validate(
        {
            "code": RESOURCE,
            "name": "n",
            "owner": "pudong-hub",
            "schema": "s.avsc",
            "key": "case_no",
            "share": "unconditional",
            "fields": {"case_no": "public", "debtor_id": "personal"},
            "linked_from": {"hub": "pudong", "subscription": LINK_SUBSCRIPTION, "terms": "t.json"},
        }
    )
    schema = {"fields": [{"name": "case_no"}, {"name": "debtor_id"}]}
    grant = Grant(
        subscription="s",
        resource=RESOURCE,
        decision="approved",
        clear=["debtor_id"],
        filterable=["obligation"],
        release_sensitive=["obligation"],
        min_masks={"obligation": "drop"},
    )
    found = linked_problems(res, schema, {"s": grant}, terms)
    assert {path for _, path, _ in found} == {
        ("clear", 0),
        ("filterable", 0),
        ("release_sensitive", 0),
        ("min_masks", "obligation"),
    }
    assert all(where == "s" for where, _, _ in found)
    assert "decided at the district in g.yaml:2 fields" in found[1][2]


def test_plan_terms_prints_them_without_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XHUB_PUDONG_SECRET", "test-secret-pudong-0123456789")
    root = tmp_path / "district"
    shutil.copytree(DEMO_CONFIG, root)
    add_link_subscription(root, link="citylink", hub="pudong", court="court")
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "plan", str(root), "--terms", LINK_SUBSCRIPTION],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["fields"]["debtor_id"]["mask"] == "id_number"  # the catalog default, no grant
    assert printed["fields"]["debtor_id"]["set_by"].startswith("catalog/credit.yaml:")
