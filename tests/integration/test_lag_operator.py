"""``xhub lag`` as the operator (``xhub-operator``) on the secure broker, under the ACLs ``xhub apply`` made.

The operator may DESCRIBE every ``xhub.*`` topic and ``xhub-*`` group but READ no delivery or source topic
(they carry personal data; a grant is never widened for monitoring). Lag in records comes from offsets,
which DESCRIBE allows; what needs the records themselves (their age) is shown as not permitted and where
to see it instead, never as a failure.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.core import names
from hub.core.kafka_settings import KafkaSettings
from hub.monitor.cli import Sampling, lag_command
from hub.monitor.status import Rules
from hub.provision.credentials import OPERATOR
from tests.integration.federation_support import party_connection, secure_clusters
from tests.integration.monitor_support import Exchange, running_exchange, wait_for

pytestmark = pytest.mark.kafka


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
    ex: Exchange, monkeypatch: pytest.MonkeyPatch, folder: Path, *, json_out: bool, admin: str | None
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
            Rules(window=3600.0),
            json_out=json_out,
            sampling=Sampling(samples=1),
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

    # With the hub's admin port: the ages the hub measured with its own READ.
    code, text = lag_as_operator(ex, monkeypatch, folder, json_out=True, admin=ex.admin_url)
    waiting = {r["subscription"]: r for r in json.loads(text)["subscriptions"]}[debtors]["subscriber_lag"]
    assert waiting["lag_records"] >= 3
    assert waiting["lag_seconds"] is not None, waiting
    assert waiting["lag_seconds"] >= 0
    assert waiting["lag_seconds_from"] == f"admin port {ex.admin_url}"
    code, text = lag_as_operator(ex, monkeypatch, folder, json_out=False, admin=ex.admin_url)
    assert f"* the hub's own figure, from its admin port {ex.admin_url}" in text, text
