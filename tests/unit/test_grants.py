"""The owners' grants through the one validation path: validate, plan's explanation, a hub's snapshot.

The broken-config corpus (tests/fixtures/broken_configs/grant-*, sub-approval-block, sub-filter-*) holds
one refused case per rule with its file:line; these tests cover what a corpus case cannot show.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub.catalog.model import FieldClass
from hub.config import compile_config, load_config
from hub.config.snapshot import config_snapshot
from hub.config.validation import CompiledConfig
from hub.core.errors import ConfigError, ConfigProblem
from hub.engine.policy_set import policy_set_from_snapshot
from hub.policy.plan import compile_plan
from hub.provision.explain import explain, explain_text

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "deploy" / "demo" / "config"
SECRET = b"unit-test-secret-0123456789"


def test_finding_1_the_demo_keeps_its_approvals_only_in_the_owners_grant_files() -> None:
    cfg = load_config(DEMO)
    assert all(sub.approval is None for sub in cfg.subscriptions.values())
    assert {sid: cfg.grant_folders[sid] for sid in cfg.grants} == {
        "tax-debtors": "court",
        "housing-persons": "psb",
        "tax-estates": "housing",
    }
    for sid, grant in cfg.grants.items():
        assert cfg.resources[grant.resource].owner == cfg.grant_folders[sid]


def test_finding_1_a_subscriber_writing_its_own_grant_is_refused_with_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "config"
    shutil.copytree(DEMO, root)
    # transport answers its own request for psb's population base
    (root / "grants" / "transport").mkdir()
    (root / "grants" / "transport" / "mine.yaml").write_text(
        "grants:\n  - subscription: transport-persons\n    resource: PD-POP-0001\n    decision: approved\n"
        "    approver: me\n    decided_at: 2026-11-20T10:00:00+08:00\n    clear: [phone]\n"
        "    legal_basis: 工作需要\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(root)
    [problem] = info.value.problems
    assert isinstance(problem, ConfigProblem)
    assert (problem.file, problem.line) == ("grants/transport/mine.yaml", 3)
    assert "owned by psb, not transport" in problem.message


def test_finding_2_the_hub_refuses_a_filter_on_a_hidden_field_in_an_applied_snapshot() -> None:
    cfg = load_config(DEMO)
    body = json.loads(config_snapshot(cfg, "pudong"))
    body["subscriptions"]["lujiazui-debtors"]["filter"] = 'debtor_name.startsWith("张")'  # masked: name
    with pytest.raises(ConfigError, match='row filter reads field "debtor_name"'):
        policy_set_from_snapshot(body, secret=SECRET, digest="x")


def test_a_snapshot_carries_the_grants_and_a_hub_enforces_them() -> None:
    cfg = load_config(DEMO)
    body = json.loads(config_snapshot(cfg, "pudong"))
    assert body["grants"]["tax-debtors"]["clear"] == ["debtor_name"]
    assert body["grant_folders"]["tax-debtors"] == "court"
    policies = policy_set_from_snapshot(body, secret=SECRET, digest="x")
    assert {r.name: r.mask for r in policies.plans["tax-debtors"].rules}["debtor_name"] is None
    del body["grants"]["tax-debtors"]
    policies = policy_set_from_snapshot(body, secret=SECRET, digest="y")
    rule = {r.name: r.mask for r in policies.plans["tax-debtors"].rules}["debtor_name"]
    assert rule is not None
    assert rule.kind == "name"
    body["grant_folders"]["housing-persons"] = "court"  # a grant moved to a folder that does not own it
    with pytest.raises(ConfigError, match="owned by psb, not court"):
        policy_set_from_snapshot(body, secret=SECRET, digest="z")


def test_plan_explains_fields_masks_filter_fields_and_why_fields_are_withheld() -> None:
    cfg = load_config(DEMO)
    res = cfg.resources["PD-EST-0001"]
    # a catalog with a secret and an unclassified field (validate would refuse such a request: the plan
    # still explains it, as a hub would enforce it)
    res = res.model_copy(update={"fields": {**res.fields, "use": FieldClass.SECRET}})
    res.fields.pop("registered_date")
    cfg.resources["PD-EST-0001"] = res
    sub = cfg.subscriptions["tax-estates"]
    grant = cfg.grants["tax-estates"].model_copy(update={"release_sensitive": [], "fields": None})
    plan = compile_plan(sub, res, cfg.schemas[res.code], secret=SECRET, grant=grant)
    entries = explain(CompiledConfig(cfg, {"tax-estates": plan}))
    why = {w["field"]: w["why"] for w in entries[0]["withheld"]}
    assert why == {
        "area_m2": "sensitive, not released by a grant",
        "use": "secret (涉密): never delivered",
        "registered_date": "unclassified (deny by default)",
    }
    narrowed = grant.model_copy(update={"fields": ["cert_no"]})
    plan = compile_plan(sub, res, cfg.schemas[res.code], secret=SECRET, grant=narrowed)
    text = explain_text(explain(CompiledConfig(cfg, {"tax-estates": plan})))
    assert "withheld district: not granted" in text
    assert "field owner_id_number" not in text


def test_plan_policies_only_needs_no_cluster() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "plan", str(DEMO), "--policies-only"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "subscription transport-persons (transport <- PD-POP-0001): refused: no_grant" in out
    assert "grant: none yet (conditional: nothing goes out until the owner grants it)" in out
    assert "field debtor_name: in clear (personal, clear by grant)" in out
    assert "field debtor_name: masked name (personal, catalog default)" in out
    assert "field owner_id_number: masked pseudonym (personal, grant minimum)" in out
    assert "field area_m2: in clear (sensitive, released by the grant)" in out
    assert "withheld debtor_name: dropped by its mask (requested)" in out
    assert "filter may read: case_no, debtor_type, district, performance_status, publish_date" in out
    assert "key: case_no as pseudonym" in out  # lujiazui-debtors: filtered, case_no not owner-filterable


def test_compile_config_locates_an_owner_mask_that_cannot_apply_at_the_grant(tmp_path: Path) -> None:
    root = tmp_path / "config"
    shutil.copytree(DEMO, root)
    # a text mask on a date field, where the subscriber's stronger request (date_year) applies anyway
    path = root / "grants" / "psb" / "population.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("birth_date: date_month", "birth_date: phone"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        compile_config(load_config(root, check=False))
    texts = [str(p) for p in info.value.problems]
    assert len(texts) == 1, texts
    assert texts[0].startswith("grants/psb/population.yaml:")
    assert 'field "birth_date": mask "phone" cannot apply' in texts[0]
