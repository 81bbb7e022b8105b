"""The status page in headless Chromium against a running hub: live rows render and update themselves.

Needs Debian's chromium and chromium-driver (``deploy/local/browser.sh`` installs them; ``make test`` runs
it). Without them the test fails, naming that script: it never skips.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hub.core import names
from hub.core.backlog_report import REPORT_KEY, BacklogReport, SourceBacklog
from hub.core.envelope import now_ms
from hub.core.kafka_settings import KafkaSettings
from tests.integration.monitor_support import (
    Exchange,
    add_late_subscription,
    admin_server,
    running_exchange,
    wait_for,
)

pytestmark = pytest.mark.kafka

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 60  # the last test of a 20-minute suite, on a broker with many topics: slow lag reads


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
            # The hub's committed offsets can show up a moment after its deliveries (the transaction
            # coordinator writes the offsets' commit marker on its own), so one refresh may still count
            # the 3 changes as hub lag: wait for a refresh that has both lags at 0.
            ok = (
                cells["delivered"] == "3"
                and cells["row-status"] == "OK"
                and cells["subscriber-lag-records"] == "0"
                and cells["hub-lag"] == "0 · 0.0 s"
            )
            return cells if ok else None

        cells = wait_until(
            browser, "the debtors row: 3 delivered, OK, no hub or subscriber lag", debtors_caught_up
        )
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


# One script, one instant: the path columns of a subscription's row, its sparkline, the tiles.
_PATH_SCRIPT = """
const row = document.querySelector(arguments[0]);
if (!row) { return null; }
const cell = (f) => row.querySelector(`[data-field="${f}"]`);
const svg = row.querySelector('svg.sparkline');
const src = document.querySelector(arguments[1]);
return {
  backlog: cell('source-backlog').innerText,
  backlogRows: cell('source-backlog').getAttribute('data-rows'),
  backfill: cell('backfill').innerText,
  backfillState: cell('backfill').getAttribute('data-state'),
  sparkPoints: svg ? Number(svg.getAttribute('data-points')) : -1,
  sparkPeak: svg ? Number(svg.getAttribute('data-peak') || 0) : -1,
  sparkLines: svg ? svg.querySelectorAll('polyline').length : 0,
  sparkTitle: svg ? svg.querySelector('title').textContent : '',
  sourceStatus: src ? src.getAttribute('data-status') : null,
  sourceBacklog: src ? src.querySelector('[data-field="backlog"]').innerText : null,
  drained: document.getElementById('tile-drained').innerText,
  notDrained: document.getElementById('tile-not-drained').innerText,
  restore: document.getElementById('restore-value').innerText,
  restoreDetail: document.getElementById('restore-detail').innerText,
};
"""


_DONE_SCRIPT = """
const c = document.querySelector(arguments[0]);
return c && c.getAttribute('data-state') === 'done' ? c.innerText : null;
"""


@contextmanager
def reporting_sidecars(ex: Exchange, backlogs: dict[str, tuple[int, float, str]]) -> Iterator[None]:
    """Stand-ins for the departments' sidecars: a backlog report every second on each backlog topic.

    ``backlogs``: {department: (rows, age of the oldest in seconds, resource)}. (test_lag_path runs real
    sidecars; here the page's rendering is what is tested.)
    """
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            for dept, (rows, age_s, resource) in backlogs.items():
                oldest_ms = now_ms() - int(age_s * 1000) if rows else None
                source = SourceBacklog("sql_trigger", "running", rows, oldest_ms, resources=(resource,))
                report = BacklogReport(dept, now_ms(), 1.0, {f"{dept}-db": source})
                topic = names.backlog_topic(dept)
                ex.producer.send(topic, key=REPORT_KEY.encode(), value=report.encode(), partition=0)
            ex.producer.flush(timeout=30)
            stop.wait(1.0)

    thread = threading.Thread(target=run, name="stand-in-sidecars", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def test_status_page_shows_backlogs_backfill_restore_and_a_lag_sparkline(
    browser: Any, exchange: Exchange
) -> None:
    ex = exchange
    admin = admin_server(ex)
    admin.interval, admin.max_share = 0.5, 1.0
    stats = ex.process.worker.stats
    with stats.lock:  # the state store sets these; the page renders whatever they say
        stats.restore_partitions_total, stats.restore_partitions_done = 6, 2
        stats.restore_records_total, stats.restore_records_done = 90_000, 30_000
    reports = {
        ex.names.court: (3, 30.0, "PD-CRD-0001"),
        ex.names.amr: (0, 0.0, "PD-LIC-0001"),
    }
    with reporting_sidecars(ex, reports):
        _path_page(browser, ex, admin)


def _path_page(browser: Any, ex: Exchange, admin: Any) -> None:
    debtors = ex.names.debtors
    court_source = f"{ex.names.court}/{ex.names.court}-db"
    stats = ex.process.worker.stats
    ex.publish_debtors(1500)  # a late subscription's backfill has these to go through
    wait_for("the hub to read the debtors", lambda: stats.consumed >= 1500, timeout=120)
    late = add_late_subscription(ex)
    ex.publish_debtors(2)  # nobody reads the debtors' deliveries: the subscriber lag ages

    browser.get(ex.admin_url + "/")

    def shown(d: Any) -> dict[str, Any] | None:
        cells = d.execute_script(
            _PATH_SCRIPT,
            f'#subscriptions tr[data-subscription="{debtors}"]',
            f'#sources tr[data-source="{court_source}"]',
        )
        return (
            cells
            if cells and cells["backlogRows"] == "3" and cells["sparkPoints"] >= 2 and cells["sparkPeak"] > 0
            else None
        )

    cells = wait_until(browser, "the debtors row with its source backlog and a sparkline", shown)
    assert cells["backlog"].startswith("3 · ")
    assert cells["backfill"] == "–"  # debtors never needed one
    assert cells["sparkLines"] >= 1
    assert cells["sparkTitle"].startswith("path lag over the last 15 min: now ")
    assert cells["sourceStatus"] == "STALL"  # 30 s old: past the 15 s stall threshold, within the window
    assert cells["sourceBacklog"].startswith("3 · ")
    assert cells["drained"] == "not drained"
    assert "state store restoring: 2/6 partitions" in cells["notDrained"]
    assert "sources not yet published" in cells["notDrained"]
    assert cells["restore"] == "33 %"
    assert cells["restoreDetail"].startswith("2/6 partitions · 30,000 / 90,000 records")

    late_row = f'#subscriptions tr[data-subscription="{late}"] [data-field="backfill"]'
    done = wait_until(
        browser,
        "the late subscription's backfill done",
        lambda d: d.execute_script(_DONE_SCRIPT, late_row),
    )
    total = done.split("\n")[0]
    assert total.split(" / ")[0] == total.split(" / ")[1]  # 1,500 / 1,500
    amr = text_of(
        browser, f'#sources tr[data-source="{ex.names.amr}/{ex.names.amr}-db"] [data-field="backlog"]'
    )
    assert amr == "0 · 0.0 s"

    # Let the sparkline draw a little more, then keep a picture of the page for people to look at.
    time.sleep(12)
    out = Path(__file__).resolve().parents[2] / "build" / "status-page.png"
    out.parent.mkdir(exist_ok=True)
    browser.set_window_size(1600, 1200)
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1600, max(900, int(height) + 40))
    browser.save_screenshot(str(out))
