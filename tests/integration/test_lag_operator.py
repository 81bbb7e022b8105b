"""``xhub lag`` as the operator (``xhub-operator``) on the secure broker, under the ACLs ``xhub apply`` made.

The operator may DESCRIBE every ``xhub.*`` topic and ``xhub-*`` group but READ no delivery or source topic
(they carry personal data; a grant is never widened for monitoring). Lag in records comes from offsets,
which DESCRIBE allows; what needs the records themselves (their age) is shown as not permitted and where
to see it instead, never as a failure. A lone commit marker after a position is not a stalled consumer.
With the hub's admin port, the hub's own records, ages and status (it reads) are shown instead.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from hub.monitor.board import MARKERS_ONLY
from hub.monitor.cli import Sampling, lag_command
from hub.monitor.status import Rules
from hub.provision.credentials import OPERATOR
from tests.integration.federation_support import party_connection, secure_clusters
from tests.integration.monitor_support import Exchange, running_exchange, wait_for

pytestmark = pytest.mark.kafka

PATIENT = Rules(window=3600.0)
ONE_SAMPLE = Sampling(samples=1)


@pytest.fixture
def exchange(kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Exchange]:
    if not secure_clusters():
        pytest.fail(
            "the operator's ACLs need the secure broker (deploy/local/kafka.sh up, as make test runs it); "
            "the tests connect in plaintext",
            pytrace=False,
        )
    with running_exchange(kafka, tmp_path, monkeypatch) as ex:
        yield ex


def lag_as_operator(
    ex: Exchange,
    monkeypatch: pytest.MonkeyPatch,
    folder: Path,
    *,
    json_out: bool,
    admin: str | None,
    rules: Rules = PATIENT,
    sampling: Sampling = ONE_SAMPLE,
) -> tuple[int, str]:
    """``xhub lag`` of the exchange's hub with the operator's certificate (the environment gives a
    process its identity, as ``kafka.sh client-env xhub-operator`` does); the hub keeps its own."""
    operator = party_connection(ex.kafka, OPERATOR, folder)
    out = io.StringIO()
    with monkeypatch.context() as env:
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            env.setenv(f"XHUB_KAFKA_{name.upper()}", operator[name])
        code = lag_command(
            str(ex.config_dir),
            ex.names.hub,
            rules,
            json_out=json_out,
            sampling=sampling,
            out=out,
            admin=admin,
        )
    return code, out.getvalue()


def test_the_operator_sees_lag_in_records_and_ages_as_not_permitted(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ex = exchange
    debtors = ex.names.debtors
    ex.publish_debtors(3)  # no subscriber runs: the three deliveries wait for it
    wait_for("the hub to deliver", lambda: ex.delivered(debtors) >= 3)
    folder = tmp_path / "operator"

    # Apart from the hub (no admin port): records from offsets, ages not permitted, and where to see them.
    code, text = lag_as_operator(ex, monkeypatch, folder, json_out=True, admin=None)
    assert code == 0, text
    rows = {r["subscription"]: r for r in json.loads(text)["subscriptions"]}
    waiting = rows[debtors]["subscriber_lag"]
    offsets = sum(p["end"] - (p["committed"] or 0) for p in waiting["partitions"])
    # The three records, and the commit markers of the hub's transactions (offsets cannot tell them apart).
    assert waiting["lag_records"] == offsets >= 3, waiting
    assert waiting["lag_seconds"] is None
    assert waiting["unread"].startswith(f"no READ on {names.delivery_topic(ex.names.hub, debtors)}")
    assert "admin port" in waiting["unread"]
    assert rows[ex.names.licences]["subscriber_lag"]["lag_records"] == 0  # nothing ever came: 0, not unknown
    assert rows[ex.names.licences]["subscriber_lag"]["lag_seconds"] == 0.0

    code, text = lag_as_operator(ex, monkeypatch, folder, json_out=False, admin=None)
    line = next(ln for ln in text.splitlines() if ln.startswith(ex.names.hub) and debtors in ln)
    assert "no READ" in line, text
    assert "AGE      not permitted (no READ on delivery and source topics for this identity)" in text

    # The hub caught up on the source topic: from offsets, at most its last commit marker after each
    # position. Judged with no patience at all (STALL as soon as two samples show a position standing),
    # that marker is not a record waiting: OK, where it used to turn STALL.
    code, text = lag_as_operator(
        ex,
        monkeypatch,
        folder,
        json_out=True,
        admin=None,
        rules=Rules(window=60.0, stall_after=0.0),
        sampling=Sampling(samples=3, interval=0.2),
    )
    caught_up = {r["subscription"]: r for r in json.loads(text)["subscriptions"]}[debtors]["hub_lag"]
    assert caught_up["unread"], caught_up
    assert all(p["end"] - (p["committed"] or 0) <= 1 for p in caught_up["partitions"]), caught_up
    assert caught_up["status"] == "OK", caught_up
    if caught_up["lag_records"]:
        assert caught_up["reason"] == MARKERS_ONLY

    # With the hub's admin port: the records, ages and status the hub measured with its own READ (data
    # records only: the three deliveries, no commit marker), and the exit status follows that status.
    source = f"admin port {ex.admin_url}"
    code, text = lag_as_operator(ex, monkeypatch, folder, json_out=True, admin=ex.admin_url)
    rows = {r["subscription"]: r for r in json.loads(text)["subscriptions"]}
    waiting = rows[debtors]["subscriber_lag"]
    assert waiting["lag_records"] == 3, waiting
    assert waiting["lag_seconds"] is not None, waiting
    assert waiting["lag_seconds"] >= 0
    assert waiting["lag_records_from"] == waiting["lag_seconds_from"] == waiting["status_from"] == source
    assert rows[debtors]["hub_lag"]["lag_records"] == 0  # the hub's own: its commit markers not counted
    assert (code == 0) == all(r["status"] == "OK" for r in rows.values()), text
    code, text = lag_as_operator(ex, monkeypatch, folder, json_out=False, admin=ex.admin_url)
    assert f"* the hub's own figure (records, age and status), from its {source}" in text, text
