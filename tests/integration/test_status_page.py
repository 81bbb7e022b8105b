"""The status page in headless Chromium against a running hub: live rows render and update themselves.

Needs Debian's chromium and chromium-driver (``deploy/local/browser.sh`` installs them; ``make test`` runs
it). Without them the test fails, naming that script: it never skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.core.kafka_settings import KafkaSettings
from tests.integration.monitor_support import Exchange, running_exchange

pytestmark = pytest.mark.kafka

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"headless Chromium is needed for the status-page test: {', '.join(missing)} missing; "
            "run deploy/local/browser.sh (installs Debian's chromium and chromium-driver)",
            pytrace=False,
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        pytest.fail(f"selenium is missing: pip install exchange-hub[test] ({exc})", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def exchange(kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Exchange]:
    with running_exchange(kafka, tmp_path, monkeypatch) as ex:
        yield ex


# The page replaces its table bodies on every refresh, so an element found a moment ago can be gone by the
# time it is read. Each read below runs as one script inside the page: a consistent snapshot, never stale.
_ROW_SCRIPT = """
const row = document.querySelector(arguments[0]);
if (!row) { return null; }
const cells = {};
for (const c of row.querySelectorAll('[data-field]')) { cells[c.getAttribute('data-field')] = c.innerText; }
cells['row-status'] = row.getAttribute('data-status') || '';
const lag = row.querySelector('td[data-field="subscriber-lag"]');
cells['subscriber-lag-records'] = lag ? (lag.getAttribute('data-records') || '') : '';
return cells;
"""


def row_cells(driver: Any, subscription: str) -> dict[str, str] | None:
    """The cells of one subscription's row by data-field (plus its status), or None while it is absent."""
    cells = driver.execute_script(_ROW_SCRIPT, f'#subscriptions tr[data-subscription="{subscription}"]')
    return dict(cells) if cells is not None else None


def text_of(driver: Any, css: str) -> str | None:
    """The visible text of the first element matching ``css`` at one instant, or None while it is absent."""
    text = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css
    )
    return str(text) if text is not None else None


def wait_until(driver: Any, what: str, check: Any) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(check)
    except TimeoutException as exc:
        raise AssertionError(f"status page: timed out waiting for {what}") from exc


def test_status_page_renders_live_rows(browser: Any, exchange: Exchange) -> None:
    from selenium.webdriver.common.by import By

    ex = exchange
    debtors, licences = ex.names.debtors, ex.names.licences
    subscriber = ex.subscriber(debtors)
    subscriber.start()
    try:
        ex.publish_debtors(3)
        browser.get(ex.admin_url + "/")
        assert "exchange-hub" in browser.title

        def debtors_caught_up(d: Any) -> dict[str, str] | None:
            cells = row_cells(d, debtors)
            if cells is None:
                return None
            ok = (
                cells["delivered"] == "3"
                and cells["row-status"] == "OK"
                and cells["subscriber-lag-records"] == "0"
            )
            return cells if ok else None

        cells = wait_until(browser, "the debtors row: 3 delivered, OK, no lag", debtors_caught_up)
        assert cells["status"] == "OK"
        assert cells["subscription"] == debtors
        assert cells["resource"] == "PD-CRD-0001"
        assert cells["hub-lag"] == "0 · 0.0 s"
        assert cells["subscriber-lag"] == "0 · 0.0 s"

        idle = wait_until(browser, "the idle licences row", lambda d: row_cells(d, licences))
        assert idle["row-status"] == "OK"
        assert idle["delivered"] == "0"
        assert idle["hub-lag"] == "0 · 0.0 s"
        assert idle["subscriber-lag"] == "0 · 0.0 s"

        assert text_of(browser, "#hub-name") == ex.names.hub
        assert text_of(browser, "#ready") == "ready"
        assert text_of(browser, '[data-status-count="OK"]') == "OK 2"
        court_sent = f'#dead-letters tr[data-department="{ex.names.court}"] [data-field="sent"]'
        assert wait_until(browser, "the court's dead-letter row", lambda d: text_of(d, court_sent)) == "0"
    finally:
        subscriber.stop()

    # The subscriber is gone; two more changes arrive. The open page shows them without a reload.
    ex.publish_debtors(2)

    def debtors_waiting(d: Any) -> dict[str, str] | None:
        cells = row_cells(d, debtors)
        return (
            cells if cells and cells["delivered"] == "5" and cells["subscriber-lag-records"] == "2" else None
        )

    cells = wait_until(browser, "the debtors row to show 5 delivered, 2 waiting", debtors_waiting)
    assert cells["subscriber-lag"].startswith("2 · ")
    assert browser.find_element(By.ID, "error").is_displayed() is False
