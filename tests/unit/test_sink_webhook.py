"""WebhookSink against a real local HTTP server: bodies, retries, backoff, dead letters."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.sinks import Delivery, ListDeadLetters, SinkUnavailable, WebhookSink, WebhookSinkConfig
from tests.integration.sinks_support import LICENCE, WebApp, licence


def delivery(key: str, seq: int, offset: int = 0, op: str = "u") -> Delivery:
    return Delivery(
        topic="xhub.dlv.hub1.lic",
        partition=0,
        offset=offset,
        key=key,
        op=op,
        seq=seq,
        event_id=f"ev-{key}-{seq}",
        policy_version="pv-1",
        subscription="lic",
        data=None if op == "d" else licence(key, seq),
        source_commit_ts_ms=1_700_000_000_000,
        resource="PD-LIC-0001",
        value=f"raw-{key}-{seq}".encode(),
        schema_id=1,
        data_schema=LICENCE,
    )


@pytest.fixture
def app() -> Iterator[WebApp]:
    web = WebApp()
    yield web
    web.close()


def make(url: str, **options: Any) -> tuple[WebhookSink, ListDeadLetters]:
    config = WebhookSinkConfig(url=url, backoff_initial_s=0.01, backoff_max_s=0.05, **options)
    sink = WebhookSink(config)
    dead = ListDeadLetters()
    sink.bind_dead_letters(dead)
    return sink, dead


def test_batches_are_posted_as_json_with_token_and_idempotency_key(app: WebApp) -> None:
    sink, dead = make(app.url, bearer_token=SecretStr("s3cret"), max_batch=2)
    sink.write([delivery("A", 1, 0), delivery("B", 2, 1), delivery("C", 3, 2, op="d")])
    assert [len(r.body["deliveries"]) for r in app.received] == [2, 1]
    first = app.received[0]
    assert first.headers["Authorization"] == "Bearer s3cret"
    assert first.headers["Idempotency-Key"].startswith("batch-")
    assert first.headers["Content-Type"].startswith("application/json")
    item = first.body["deliveries"][0]
    assert item["event_id"] == "ev-A-1"
    assert item["seq"] == 1
    assert item["policy_version"] == "pv-1"
    assert item["data"]["issued"] == (dt.date(2020, 1, 1) + dt.timedelta(days=1)).isoformat()
    assert item["data"]["holder"] == "持证人1"
    assert app.received[1].body["deliveries"][0]["data"] is None
    assert dead.items == []
    assert "s3cret" not in repr(sink.config)


def test_single_mode_retries_server_errors_then_succeeds(app: WebApp) -> None:
    app.answer = lambda body, n: (503, {}) if n < 2 else (200, {})
    sink, dead = make(app.url, mode="single")
    sink.write([delivery("A", 1)])
    assert [r.status for r in app.received] == [503, 503, 200]
    assert app.received[0].headers["Idempotency-Key"] == "ev-A-1"
    assert app.received[0].body["key"] == "A"
    assert dead.items == []


def test_429_is_retried_and_retry_after_honoured(app: WebApp) -> None:
    app.answer = lambda body, n: (429, {"Retry-After": "0"}) if n == 0 else (200, {})
    sink, dead = make(app.url)
    sink.write([delivery("A", 1)])
    assert [r.status for r in app.received] == [429, 200]
    assert dead.items == []


def test_a_client_error_is_dead_lettered_at_once(app: WebApp) -> None:
    app.answer = lambda body, n: (422, {})
    sink, dead = make(app.url, mode="single")
    sink.write([delivery("A", 1), delivery("B", 2, 1)])
    assert len(app.received) == 2
    assert [(d.delivery.key, d.reason) for d in dead.items] == [
        ("A", "webhook_rejected"),
        ("B", "webhook_rejected"),
    ]
    assert "HTTP 422" in dead.items[0].detail


def test_after_the_last_try_the_batch_is_dead_lettered(app: WebApp) -> None:
    app.answer = lambda body, n: (500, {})
    sink, dead = make(app.url + "?token=hidden", max_attempts=3)
    sink.write([delivery("A", 1), delivery("B", 2, 1)])
    assert len(app.received) == 3
    assert {d.reason for d in dead.items} == {"webhook_failed"}
    assert [d.delivery.value for d in dead.items] == [b"raw-A-1", b"raw-B-2"]
    assert "after 3 attempts: HTTP 500" in dead.items[0].detail
    assert "hidden" not in dead.items[0].detail  # the query string may carry a token


def test_no_connection_is_retried_then_dead_lettered() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    sink, dead = make(f"http://127.0.0.1:{port}/x", max_attempts=2)
    sink.write([delivery("A", 1)])
    assert [d.reason for d in dead.items] == ["webhook_failed"]
    assert "ConnectionRefusedError" in dead.items[0].detail


def test_a_change_not_newer_than_the_last_sent_is_not_sent_again(app: WebApp) -> None:
    sink, _ = make(app.url, mode="single")
    sink.write([delivery("A", 5)])
    sink.write([delivery("A", 3, 1), delivery("A", 5, 2), delivery("A", 6, 3)])
    assert [r.body["seq"] for r in app.received] == [5, 6]


def test_closing_during_backoff_fails_the_write_without_dead_letters(app: WebApp) -> None:
    app.answer = lambda body, n: (503, {})
    sink = WebhookSink(WebhookSinkConfig(url=app.url, backoff_initial_s=30, backoff_max_s=30))
    dead = ListDeadLetters()
    sink.bind_dead_letters(dead)
    timer = threading.Timer(0.3, sink.close)
    timer.start()
    with pytest.raises(SinkUnavailable):
        sink.write([delivery("A", 1)])
    timer.join()
    assert dead.items == []


def test_config_refuses_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookSinkConfig(url="ftp://example.org/x")


def test_a_closed_sink_posts_again_after_open(app: WebApp) -> None:
    app.answer = lambda body, n: (503, {}) if n == 0 else (200, {})
    sink, dead = make(app.url)
    sink.close()
    sink.open()
    sink.write([delivery("A", 1)])
    assert [r.status for r in app.received] == [503, 200]
    assert dead.items == []
