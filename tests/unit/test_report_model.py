"""The 考核 report's model and page without Kafka: request figures, ranking, freshness buckets, the HTML."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from hub.config import load_config
from hub.monitor.report import SharingReport, add_request_figures, catalog_figures, format_report
from hub.monitor.report_html import FONTS, freshness_histogram, render_html
from tests.unit.test_governance_requests import _config


def _report(tmp_path: Path) -> SharingReport:
    cfg = load_config(_config(tmp_path))
    depts = catalog_figures(cfg)
    depts["court"].records_delivered, depts["court"].bad_records_sent = 99, 1
    depts["court"].bad_records_by_reason = {"bad_wire_format": 1}
    depts["court"].freshness_seconds = [0.05, 0.2, 0.2, 3.0, 120.0]
    report = SharingReport(1_764_720_000_000, ["city", "pudong"], list(depts.values()))
    add_request_figures(report, cfg, today=date(2026, 12, 3))
    return report


def test_request_figures_per_owner(tmp_path: Path) -> None:
    by = {d.department: d for d in _report(tmp_path).departments}
    psb = by["psb"].requests
    # housing-persons answered a day late; transport-persons refused on its due day; tax-persons overdue;
    # lujiazui-persons pending without a filing date
    assert (psb.received, psb.on_time, psb.late, psb.refused, psb.pending, psb.overdue) == (4, 1, 1, 1, 2, 1)
    assert sorted(psb.answer_days) == [10, 11]
    assert psb.median_answer_days == 10.5
    assert psb.on_time_ratio == 1 / 3  # one on time of the three whose due day has come
    [refusal] = psb.refusals
    assert refusal.subscription == "transport-persons"
    assert refusal.legal_basis.startswith("《中华人民共和国个人信息保护法》")
    assert by["housing"].requests.median_answer_days == 10
    assert by["tax"].requests.received == 0


def test_ranking_averages_what_applies_and_ties_share_a_rank(tmp_path: Path) -> None:
    by = {d.department: d for d in _report(tmp_path).departments}
    assert by["court"].score == (0.5 + 0.99) / 2  # share ratio 1/2; 99 of 100 records clean; no request
    assert by["psb"].score == (1.0 + 1 / 3) / 2
    assert (by["amr"].rank, by["housing"].rank) == (1, 1)  # both 100 %
    assert by["court"].rank == 3
    assert by["tax"].score is None
    assert by["tax"].rank is None  # owns nothing, sent nothing: not ranked


def test_freshness_buckets() -> None:
    assert freshness_histogram([0.05, 0.1, 0.2, 3.0, 120.0]) == [2, 1, 0, 0, 0, 1, 0, 0, 1]


def test_the_page_is_self_contained_and_names_a_cjk_font_stack(tmp_path: Path) -> None:
    page = render_html(_report(tmp_path), source="deploy/demo/config")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
    assert "Noto Sans CJK SC" in FONTS
    assert f"font: 14px/1.5 {FONTS}" in page
    assert page.count("<svg") == 4
    assert "<tr data-refusal='transport-persons' data-dept='psb'>" in page
    assert "data-field='overdue'>1</td>" in page
    assert "data-bucket='&gt;60' data-count='1'" in page


def test_the_text_report_lists_requests_and_the_ranking(tmp_path: Path) -> None:
    text = format_report(_report(tmp_path))
    assert (
        "psb: received 4, answered on time 1, late 1, refused 1, pending 2 (1 overdue); median answer 10.5"
        in text
    )
    assert "refused transport-persons: 联系电话不属于共享范围" in text
    assert "  1. amr 100.0" in text
