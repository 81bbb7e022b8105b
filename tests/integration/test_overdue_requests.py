"""Overdue share requests on a running hub: the per-owner gauge, /api/status, the status page in
Chromium and `xhub lag`'s summary, on the real broker; an applied answer clears the gauge live."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hub.app import HubProcess, start_hub
from hub.config.loader import ConfigDir
from hub.monitor.cli import Sampling, lag_command
from hub.monitor.status import Rules
from tests.fixtures.hubkit import apply_config, wait_for
from tests.integration.test_monitor_admin import scrape, value
from tests.integration.test_status_page import browser, wait_until

__all__ = ["browser"]  # the fixture, imported for pytest

pytestmark = pytest.mark.kafka

FILED = "2025-01-02T09:00:00"  # due 2025-01-16 (10 working days): overdue whatever day the test runs


def _edit_subscription(root: Path, sid: str, **changes: Any) -> None:
    for path in sorted((root / "subscriptions").rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for sub in doc.get("subscriptions", []):
            if sub["id"] == sid:
                sub.update(changes)
                path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
                return
    raise AssertionError(f"no subscription {sid} under {root}/subscriptions")


@pytest.fixture
def overdue_hub(
    demo_config: tuple[Path, dict[str, str]],
) -> Iterator[tuple[ConfigDir, dict[str, str], Path, HubProcess]]:
    root, renames = demo_config
    _edit_subscription(root, "transport-persons", requested_at=FILED)
    cfg = apply_config(root)
    process = start_hub(cfg, renames["pudong"])
    assert process.worker.ready.wait(30), "hub worker did not start"
    try:
        yield cfg, renames, root, process
    finally:
        process.close()


def test_an_overdue_request_shows_as_a_gauge_per_owner_on_the_page_and_in_lag(
    overdue_hub: tuple[ConfigDir, dict[str, str], Path, HubProcess], browser: Any
) -> None:
    _, renames, root, process = overdue_hub
    hub, psb, housing = renames["pudong"], renames["psb"], renames["housing"]
    assert process.admin_url is not None
    url = process.admin_url

    m = scrape(url)
    assert value(m, "xhub_share_requests_overdue", hub=hub, owner=psb) == 1
    assert value(m, "xhub_share_requests_pending", hub=hub, owner=psb) == 1
    assert value(m, "xhub_share_requests_overdue", hub=hub, owner=housing) == 0  # it answered its request

    doc = httpx.get(f"{url}/api/status", timeout=10).json()["share_requests"]
    assert doc["overdue"] == 1
    assert doc["overdue_by_owner"] == {housing: 0, psb: 1}
    [item] = doc["requests"]
    assert (item["subscription"], item["owner"], item["requested_on"], item["due_on"]) == (
        "transport-persons",
        psb,
        "2025-01-02",
        "2025-01-16",
    )

    browser.get(url + "/")
    script = """
    const row = document.querySelector('#overdue-requests tr[data-request="transport-persons"]');
    if (!row || document.getElementById('share-requests').hidden) { return null; }
    const cells = {};
    for (const c of row.querySelectorAll('[data-field]')) {
      cells[c.getAttribute('data-field')] = c.innerText;
    }
    cells['owner'] = row.getAttribute('data-owner');
    return cells;
    """
    cells = wait_until(browser, "the overdue request on the status page", lambda d: d.execute_script(script))
    assert cells["owner"] == psb
    assert (cells["requested"], cells["due"]) == ("2025-01-02", "2025-01-16")
    assert int(cells["late"]) == item["working_days_late"] > 100

    out = io.StringIO()
    lag_command(str(root), hub, Rules(window=60), sampling=Sampling(samples=1, interval=0), out=out)
    assert f"share requests overdue: 1 (by owner: {psb} 1); oldest transport-persons due 2025-01-16" in (
        out.getvalue()
    )

    # psb answers: applied, the hub installs it and the gauge drops to 0 without a restart
    grants = root / "grants" / psb / "population.yaml"
    body = yaml.safe_load(grants.read_text(encoding="utf-8"))
    body["grants"].append(
        {
            "subscription": "transport-persons",
            "resource": "PD-POP-0001",
            "decision": "refused",
            "reason": "联系电话不属于共享范围 (phone numbers are not shared for this purpose)",
            "legal_basis": "《中华人民共和国个人信息保护法》 第六条",
            "approver": "浦东公安分局人口管理办公室",
            "reference": "浦公共享〔2026〕40号",
            "decided_at": "2026-11-30T10:00:00+08:00",
        }
    )
    grants.write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False), encoding="utf-8")
    apply_config(root)
    wait_for(
        lambda: value(scrape(url), "xhub_share_requests_overdue", hub=hub, owner=psb) == 0,
        what="the overdue gauge of psb at 0 once it answered",
    )
    assert httpx.get(f"{url}/api/status", timeout=10).json()["share_requests"]["overdue"] == 0
