"""The backfill task's transactional id: built beside the worker's, and covered by the hub's ACLs."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.config import load_config
from hub.core import names
from hub.provision.acls import desired_acls
from hub.provision.credentials import hub_party
from tests.fixtures.plugin import DEMO_CONFIG


def test_the_backfill_transactional_id_is_the_workers_with_a_suffix() -> None:
    assert names.hub_backfill_transactional_id("pudong", 3) == "xhub-hub-pudong-3-backfill"
    assert names.hub_backfill_transactional_id("pudong", 3).startswith(
        names.hub_transactional_id("pudong", 3)
    )


def test_the_hubs_acls_let_its_backfill_task_write_transactions() -> None:
    acls = desired_acls(load_config(DEMO_CONFIG), datetime.now(UTC))
    wanted = names.hub_backfill_transactional_id("pudong", 0)
    ops = {
        a.operation
        for a in acls
        if a.principal == f"User:{hub_party('pudong')}"
        and a.resource == "TRANSACTIONAL_ID"
        and (wanted == a.name or (a.pattern == "PREFIXED" and wanted.startswith(a.name)))
    }
    assert {"WRITE", "DESCRIBE"} <= ops
