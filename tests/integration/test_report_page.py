"""The 考核 report page on the real broker: `xhub report --html` after a hub delivered, opened in headless
Chromium; every number read off the page equals what the audit topic and the config say. A screenshot is
saved to build/report/report.png for people to look at."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.validation import RecordValidator
from hub.app import start_hub
from hub.audit.reader import open_decoder, read_entries
from hub.config.loader import ConfigDir
from hub.core import names
from hub.core.registry.serde import AvroSerde
from hub.demo.generator import dishonest_debtor, make_faker, person
from hub.monitor.cli import report_command
from tests.fixtures.hubkit import Publisher, apply_config, wait_for
from tests.integration.test_live_policy import _consumed
from tests.integration.test_status_page import browser

__all__ = ["browser"]  # the fixture, imported for pytest

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "build" / "report"

# One consistent read of everything the test checks, by the data-* attributes the page carries.
_READ = """
const out = {};
for (const row of document.querySelectorAll('table.departments tbody tr')) {
  const cells = out[row.getAttribute('data-dept')] || {};
  for (const c of row.querySelectorAll('[data-field]')) { cells[c.getAttribute('data-field')] = c.innerText; }
  out[row.getAttribute('data-dept')] = cells;
}
const ranks = {};
for (const row of document.querySelectorAll('#ranking tbody tr')) {
  ranks[row.getAttribute('data-dept')] = row.querySelector('[data-field="rank"]').innerText;
}
const refusals = [...document.querySelectorAll('#refusals tbody tr')].map((r) => ({
  subscription: r.getAttribute('data-refusal'), owner: r.getAttribute('data-dept'),
  reason: r.querySelector('[data-field="reason"]').innerText,
  legal_basis: r.querySelector('[data-field="legal-basis"]').innerText }));
const dead = [...document.querySelectorAll('#dead-letters tbody tr')].map((r) => [
  r.getAttribute('data-dept'), r.getAttribute('data-reason'),
  r.querySelector('[data-field="count"]').innerText]);
const bars = [...document.querySelectorAll('#chart-delivered rect[data-dept]')].map((b) => [
  b.getAttribute('data-dept'), Number(b.getAttribute('data-value'))]);
return {departments: out, ranks, refusals, dead, bars,
  requests: document.querySelectorAll('#chart-requests rect[data-month]').length,
  freshness: document.querySelectorAll('#chart-freshness rect[data-bucket]').length,
  external: [...document.querySelectorAll('[src], link[href]')].map((e) => e.outerHTML),
  cjk: document.fonts.check('14px "Noto Sans CJK SC"', '共享考核'),
  audit: document.querySelector('[data-field="audit-entries"]').innerText};
"""


def _write(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _requests_as_stated(root: Path, renames: dict[str, str]) -> None:
    """transport-persons overdue whatever the day; lujiazui asks for the population base and psb refuses."""
    path = root / "subscriptions" / renames["transport"] / "population.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["subscriptions"][0]["requested_at"] = "2025-01-02T09:00:00"
    _write(path, doc)
    _write(
        root / "subscriptions" / renames["lujiazui"] / "population.yaml",
        {
            "subscriptions": [
                {
                    "id": "lujiazui-persons",
                    "subscriber": renames["lujiazui"],
                    "resource": "PD-POP-0001",
                    "hub": renames["pudong"],
                    "fields": ["district"],
                    "purpose": "网格化管理 (case management)",
                    "requested_at": "2026-09-24T10:00:00",
                }
            ]
        },
    )
    grants = root / "grants" / renames["psb"] / "population.yaml"
    doc = yaml.safe_load(grants.read_text(encoding="utf-8"))
    doc["grants"].append(
        {
            "subscription": "lujiazui-persons",
            "resource": "PD-POP-0001",
            "decision": "refused",
            "reason": "街道无需全区人口库 (not needed for case management)",
            "legal_basis": "《中华人民共和国个人信息保护法》 第六条",
            "approver": "浦东公安分局人口管理办公室",
            "reference": "浦公共享〔2026〕41号",
            "decided_at": "2026-10-20T10:00:00+08:00",  # 2026-10-15 was the due day: late
        }
    )
    _write(grants, doc)


def _audit_delivered(cfg: ConfigDir, hub: str, serde: AvroSerde) -> tuple[Counter[str], int]:
    """Delivered entries per owning department, and entries read, straight from the audit topic."""
    owner = {sid: cfg.resources[s.resource].owner for sid, s in cfg.subscriptions.items()}
    counts: Counter[str] = Counter()
    read = 0
    for _, entry, _ in read_entries(cfg.hubs_file.kafka, names.audit_topic(hub), serde):
        read += 1
        if entry is not None and entry["kind"] == "delivered":
            counts[owner[entry["subscription"]]] += 1
    return counts, read


def test_the_report_page_shows_what_the_audit_and_the_config_say(
    demo_config: tuple[Path, dict[str, str]], browser: Any
) -> None:
    root, renames = demo_config
    _requests_as_stated(root, renames)
    cfg = apply_config(root)
    hub = renames["pudong"]
    court, psb, housing, amr = renames["court"], renames["psb"], renames["housing"], renames["amr"]
    process = start_hub(cfg, hub)
    try:
        assert process.worker.ready.wait(30), "hub worker did not start"
        fake = make_faker(71)
        people = [
            RecordValidator(cfg.schemas["PD-POP-0001"], "id_number", "citizen_id").validate(person(fake))
        ]
        people += [person(fake) for _ in range(5)]
        persons = Publisher(cfg, process.registry_url, "PD-POP-0001")
        for record in people:
            persons.publish(record)
        persons.flush()
        debtors = Publisher(cfg, process.registry_url, "PD-CRD-0001")
        for _ in range(8):
            debtors.publish(dishonest_debtor(fake, person(fake)))
        debtors.raw(b"not avro")  # dead-lettered, and counted against the court that sent it
        debtors.flush()
        wait_for(_consumed(process, 15), what="the 15 records consumed")
    finally:
        process.close()

    OUT.mkdir(parents=True, exist_ok=True)
    page = OUT / "report.html"
    out = io.StringIO()
    assert report_command(str(root), True, out=out, html=str(page)) == 0
    doc = json.loads(out.getvalue())
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?https?://""", html), "the page must fetch nothing"

    browser.set_window_size(1500, 1000)
    browser.get(page.as_uri())
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1500, min(int(height) + 120, 6000))
    shown = browser.execute_script(_READ)
    browser.save_screenshot(str(OUT / "report.png"))

    assert shown["external"] == []
    assert shown["cjk"], "no CJK font for the page's font stack: run deploy/local/browser.sh"
    # the audit: delivered records per owning department, and the entries read
    with open_decoder(cfg) as serde:
        delivered, read = _audit_delivered(cfg, hub, serde)
    assert delivered[court] > 0
    assert delivered[psb] == 6  # housing-persons only (transport: no grant, lujiazui: refused)
    depts = shown["departments"]
    for dept in cfg.departments:
        assert depts[dept]["records-delivered"] == f"{delivered.get(dept, 0):,}", dept
    assert int(shown["audit"]) == read
    assert dict(shown["bars"]) == {d: float(delivered.get(d, 0)) for d in depts}
    # the config: catalogued resources and share ratio
    for dept in cfg.departments:
        owned = [r for r in cfg.resources.values() if r.owner == dept]
        shared = [r for r in owned if r.share.value != "not_shared"]
        assert depts[dept]["catalogued"] == str(len(owned))
        assert depts[dept]["share-ratio"] == (f"{len(shared) / len(owned) * 100:.0f}%" if owned else "–")
    assert depts[court]["share-ratio"] == "50%"  # PD-CRD-0002 is not shared
    # the requests: psb got three (one on time, one refused late, one overdue), housing one (on time)
    assert {
        k: depts[psb][k] for k in ("requests-received", "answered-on-time", "answered-late", "refused")
    } == {
        "requests-received": "3",
        "answered-on-time": "1",
        "answered-late": "1",
        "refused": "1",
    }
    assert (depts[psb]["pending"], depts[psb]["overdue"]) == ("1", "1")
    assert depts[psb]["median-answer-days"] == "11.5"  # 10 (housing-persons) and 13 (lujiazui-persons)
    assert (depts[housing]["requests-received"], depts[housing]["answered-on-time"]) == ("1", "1")
    assert depts[housing]["median-answer-days"] == "10"
    assert depts[amr]["requests-received"] == "0"
    assert shown["refusals"] == [
        {
            "subscription": "lujiazui-persons",
            "owner": psb,
            "reason": "街道无需全区人口库 (not needed for case management)",
            "legal_basis": "《中华人民共和国个人信息保护法》 第六条",
        }
    ]
    # dead letters by reason, against the department that sent them
    assert [court, "bad_wire_format", "1"] in shown["dead"]
    assert depts[court]["dead-letters"] == "1"
    assert depts[court]["subscriptions-served"] == "4"
    assert re.fullmatch(r"\d+\.\d\d", depts[court]["freshness-p50"])
    # the ranking follows the scores of the JSON report; the charts are drawn
    ranks = {d["department"]: d["rank"] for d in doc["departments"]}
    assert shown["ranks"] == {d: str(r) if r else "–" for d, r in ranks.items()}
    assert shown["freshness"] > 0
    assert shown["requests"] > 0
