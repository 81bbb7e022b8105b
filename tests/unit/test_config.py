"""Config directory: the demo validates; a broken copy reports every error with file and line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import load_config
from hub.core.errors import ConfigError, ConfigProblem

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"


def test_demo_config_is_valid() -> None:
    cfg = load_config(DEMO)
    assert len(cfg.departments) >= 4
    assert len(cfg.resources) >= 5
    assert len(cfg.subscriptions) >= 6
    assert {r.share.value for r in cfg.resources.values()} == {"unconditional", "conditional", "not_shared"}


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    root = tmp_path / "config"
    shutil.copytree(DEMO, root)
    credit = root / "subscriptions" / "tax" / "credit.yaml"
    credit.write_text(
        credit.read_text(encoding="utf-8").replace(
            "fields: [case_no, debtor_type, debtor_id, debtor_name, court, performance_status, publish_date]",
            "fields: [case_no, debtor_type, debtor_id, debtor_name, court, performance_status, publish_date, "
            "phone]",
        ),
        encoding="utf-8",
    )
    entities = root / "catalog" / "entities.yaml"
    entities.write_text(
        entities.read_text(encoding="utf-8").replace("code: PD-LIC-0001", "code: PD-LICENCE-1"),
        encoding="utf-8",
    )
    # psb's grant put in the court's folder: the court does not own the population base
    (root / "grants" / "psb" / "population.yaml").rename(root / "grants" / "court" / "population.yaml")
    departments = root / "departments" / "psb.yaml"
    departments.write_text("departments:\n  - id: psb\n    name: [unclosed\n", encoding="utf-8")
    return root


def test_broken_copy_reports_every_error_with_file_and_line(broken: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(broken)
    problems = [p for p in info.value.problems if isinstance(p, ConfigProblem)]
    text = "\n".join(str(p) for p in problems)

    unknown_field = [p for p in problems if 'field "phone" is not in resource PD-CRD-0001' in p.message]
    assert unknown_field, text
    assert unknown_field[0].file == "subscriptions/tax/credit.yaml"
    assert unknown_field[0].line == _line_of(broken / "subscriptions/tax/credit.yaml", "publish_date, phone]")

    bad_code = [p for p in problems if "PD-LICENCE-1" in p.message]
    assert bad_code, text
    assert bad_code[0].file == "catalog/entities.yaml"
    assert bad_code[0].line == _line_of(broken / "catalog/entities.yaml", "PD-LICENCE-1")

    not_owned = [
        p for p in problems if "housing-persons" in p.message and "owned by psb, not court" in p.message
    ]
    assert not_owned, text
    assert not_owned[0].file == "grants/court/population.yaml"
    assert not_owned[0].line == _line_of(broken / "grants/court/population.yaml", "resource: PD-POP-0001")

    syntax = [p for p in problems if p.file == "departments/psb.yaml"]
    assert syntax, text
    assert "YAML syntax error" in syntax[0].message
    assert syntax[0].line == 3


def test_validate_cli_prints_each_error_and_exits_1(broken: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "validate", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) >= 4
    assert all(re.match(r"error: [\w/.-]+\.yaml(:\d+)?", line) for line in errors), proc.stderr


def test_not_shared_subscription_and_expired_validity_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "config"
    shutil.copytree(DEMO, root)
    (root / "subscriptions" / "extra.yaml").write_text(
        "subscriptions:\n"
        "  - id: tax-casefiles\n"
        "    subscriber: tax\n"
        "    resource: PD-CRD-0002\n"
        "    hub: pudong\n"
        "    fields: [case_no]\n"
        "    purpose: test\n"
        "  - id: tax-old\n"
        "    subscriber: tax\n"
        "    resource: PD-LIC-0001\n"
        "    hub: pudong\n"
        "    fields: [licence_no]\n"
        "    purpose: test\n"
        "    valid_until: 2020-01-01T00:00:00Z\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(root)
    messages = [str(p) for p in info.value.problems]
    assert any("tax-casefiles" in m and "not shared" in m and "extra.yaml:4" in m for m in messages), messages
    assert any("tax-old" in m and "validity already over" in m and "extra.yaml:14" in m for m in messages), (
        messages
    )


def test_unclassified_field_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "config"
    shutil.copytree(DEMO, root)
    credit = root / "catalog" / "credit.yaml"
    credit.write_text(
        credit.read_text(encoding="utf-8").replace("      district: public\n", "", 1), encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert any(
        'field "district" of resource PD-CRD-0001 is not classified' in str(p) for p in info.value.problems
    )


def test_json_schema_covers_every_file_kind() -> None:
    from hub.config import json_schema

    schema = json_schema()
    assert set(schema["files"]) == {
        "hubs.yaml",
        "departments/*.yaml",
        "catalog/*.yaml",
        "subscriptions/<dept>/*.yaml",
        "grants/<owner>/*.yaml",
    }
    assert "min_masks" in str(schema["files"]["grants/<owner>/*.yaml"])
