"""Terminal columns of CJK text (hub.core.columns): tables of Chinese names line up."""

from __future__ import annotations

from hub.core.columns import clip, pad, width


def test_cjk_characters_take_two_columns() -> None:
    assert width("abc") == 3
    assert width("浦东新区") == 8
    assert pad("张三", 6) == "张三  "


def test_clip_cuts_to_the_columns_and_marks_the_cut() -> None:
    assert clip("上海黄石金承物流有限公司", 9) == "上海黄石…"
    assert width(clip("上海黄石金承物流有限公司", 9)) <= 9
    assert clip("张三", 9) == "张三"
