"""deploy/monitoring: the alerting rules pass promtool's check and unit tests, and the rules and the Grafana
dashboard name only metrics the hub exports (taken from the collectors themselves, not from a list).

promtool comes from deploy/local/promtool.sh (`make test` runs it); without it these tests fail, never skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.core import Metric

from hub.audit.verify import VerifyReport
from hub.audit.verify_metrics import verify_registry
from hub.engine.policy_set import PolicySet
from hub.engine.stats import WorkerStats
from hub.governance.overdue import OverdueRequests
from hub.monitor.alerts import AlertCollector
from hub.monitor.metrics import _LAG_FAMILIES, HubCollector
from hub.monitor.path_metrics import PathCollector
from hub.monitor.share_requests import ShareRequestCollector
from hub.monitor.snapshot import MonitorState
from hub.monitor.update_cycle import UpdateCycleCollector

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "xhub-alerts.rules.yaml"
RULE_TESTS = MONITORING / "xhub-alerts.test.yaml"
DASHBOARD = MONITORING / "grafana" / "exchange-hub.json"
_METRIC = re.compile(r"\bxhub_[a-zA-Z0-9_:]*")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _promtool() -> str:
    candidates = [os.environ.get("PROMTOOL"), shutil.which("promtool")]
    candidates.append(str(ROOT / "deploy" / "local" / ".promtool" / "promtool"))
    for path in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(
        "promtool not found (PROMTOOL, PATH, deploy/local/.promtool): run deploy/local/promtool.sh, "
        "which takes it from Debian's prometheus package; `make test` does this first"
    )


def _run_promtool(*args: str, cwd: Path) -> str:
    command = [_promtool(), *args]
    done = subprocess.run(command, check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def _names(families: list[Metric]) -> set[str]:
    return {f"{f.name}{suffix}" for f in families for suffix in _SUFFIXES[f.type]}


def exported_metrics() -> set[str]:
    """Every series name the hub's admin port and the audit verification can expose."""
    state = MonitorState()
    overdue = OverdueRequests(date(2026, 1, 5), 10, {}, {}, ())
    collectors: list[Any] = [
        HubCollector("h", WorkerStats(), lambda: state, lambda: True),
        PathCollector("h", lambda: MonitorState(refreshed_ms=1)),
        AlertCollector("h", WorkerStats()),
        ShareRequestCollector("h", lambda: overdue),
        UpdateCycleCollector("h", lambda: PolicySet(hub="h", digest="")),
    ]
    names = set().union(*(_names(list(c.collect())) for c in collectors))
    names |= _names(list(verify_registry(VerifyReport(), "h", 0.0).collect()))
    names |= {name for name, _ in _LAG_FAMILIES}  # rendered as text by LagSeries (also HubCollector's)
    return names


def _rule_exprs() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # the panels of a collapsed row
    return out


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def test_exported_metrics_are_found() -> None:
    """The helper below sees the real collectors (a guard against it finding nothing)."""
    names = exported_metrics()
    for expected in (
        "xhub_subscription_lag_seconds",
        "xhub_records_consumed_total",
        "xhub_delivery_latency_seconds_bucket",
        "xhub_share_requests_overdue",
        "xhub_config_refused_total",
        "xhub_audit_chain_intact",
        "xhub_subscription_update_cycle_seconds",
        "xhub_source_backlog_oldest_seconds",
    ):
        assert expected in names


def test_promtool_checks_the_rules() -> None:
    assert "SUCCESS" in _run_promtool("check", "rules", RULES.name, cwd=MONITORING)


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert "SUCCESS" in _run_promtool("test", "rules", RULE_TESTS.name, cwd=MONITORING)


def test_every_alert_has_a_test() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
        for case in test["alert_rule_test"]
    }
    assert {name for name, _ in _rule_exprs()} <= tested


def test_rules_name_only_exported_metrics() -> None:
    exported = exported_metrics()
    for name, expr in _rule_exprs():
        used = set(_METRIC.findall(expr))
        assert used, f"{name} names no xhub metric"
        assert used <= exported, f"{name}: {sorted(used - exported)} are not exported by the hub"


def test_dashboard_is_valid_json_with_unique_ids_and_a_datasource_variable() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert dashboard["uid"]
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["gridPos"]["x"] >= 0
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_dashboard_expressions_name_only_exported_metrics() -> None:
    exported = exported_metrics()
    for panel in _panels(_dashboard()):
        for target in panel.get("targets", []):
            used = set(_METRIC.findall(target["expr"]))
            assert used, f"panel {panel['title']!r} names no xhub metric"
            assert used <= exported, f"panel {panel['title']!r}: {sorted(used - exported)} are not exported"


def test_dashboard_expressions_parse(tmp_path: Path) -> None:
    """promtool parses each expression (as a recording rule, the dashboard's variables filled in)."""
    rules = []
    for panel in _panels(_dashboard()):
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$hub", ".+")
            rules.append({"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": expr})
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    assert "SUCCESS" in _run_promtool("check", "rules", path.name, cwd=tmp_path)
