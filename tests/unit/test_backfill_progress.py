"""The backfill task's progress: a finished backfill stays as "done", whenever the task looks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kafka import TopicPartition

from hub.engine.backfill_driver import BackfillDriver
from hub.engine.handover import Backfilling, BackfillProgress, Live
from hub.engine.state.store import StateStore
from hub.engine.stats import WorkerStats

TP = TopicPartition("xhub.src.court.pd-crd-0001", 0)


def _driver(tmp_path: Path) -> BackfillDriver:
    plan = SimpleNamespace(subscription="late", source_topic=TP.topic, refusal_at=lambda now: None)
    policy: Any = SimpleNamespace(hub="pudong", policies=SimpleNamespace(plans={"late": plan}))
    reader: Any = object()  # not read: no task runs here
    return BackfillDriver(reader, policy, StateStore(tmp_path), WorkerStats())


def test_a_handover_seen_by_the_task_midway_still_ends_as_done(tmp_path: Path) -> None:
    driver = _driver(tmp_path)
    driver.offer({TP: {"late": Backfilling(100, 0)}}, {TP: 0})
    driver._update_progress(None)  # the task between two chunks
    assert driver.progress["late"].state == "waiting"
    assert len(driver._tasks(0)) == 1
    # The main loop's handover: it claims the subscription inside its transaction, then offers the state
    # that transaction committed. The task may look in between (its progress runs on its own thread).
    driver.release([(TP, "late")])
    driver._update_progress(None)
    assert driver.progress["late"].state != "done"  # not live yet: that step may still abort
    assert driver._tasks(0) == []  # released: the task starts nothing more for it
    driver.offer({TP: {"late": Live(100)}}, {TP: 0}, whole=False)
    driver._update_progress(None)
    assert driver.progress["late"] == BackfillProgress(100, 100, "done")


def test_an_abandoned_backfill_leaves_no_progress(tmp_path: Path) -> None:
    driver = _driver(tmp_path)
    driver.offer({TP: {"late": Backfilling(100, 0)}}, {TP: 0})
    driver._update_progress(None)
    driver.release([(TP, "late")])  # the main loop ends it (a refusal window opened)
    driver.offer({TP: {}}, {TP: 0}, whole=False)
    driver._update_progress(None)
    assert "late" not in driver.progress
