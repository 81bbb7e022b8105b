"""WebhookSink: POST deliveries as JSON to the department's application (stdlib ``urllib`` only).

Guarantee: **at-least-once**; the application makes it effectively-once. The sink keeps no offsets:
the sink loop commits Kafka group offsets after ``write`` returns, so a crash between a POST and that
commit sends the same deliveries again after the restart. Every request carries what the application
needs to apply idempotently: each delivery's ``event_id`` (stable across redeliveries) and per-key
``seq`` (ignore a seq not newer than the one stored), and an ``Idempotency-Key`` header (the event id,
or a hash of the batch's event ids). Within one process the sink also skips a delivery whose seq is not
newer than the last one it sent for that key (a bounded memory of ``dedup_keys`` keys).

Bodies (``json_format`` describes one delivery): ``mode: batch`` posts ``{"deliveries": [...]}`` with at
most ``max_batch`` deliveries; ``mode: single`` posts one delivery object per request.

Failures: connection errors, timeouts, 5xx, 408 and 429 are retried with exponential backoff (a
``Retry-After`` in seconds is honoured, capped by ``backoff_max_s``); after ``max_attempts`` the
request's deliveries are dead-lettered with reason ``webhook_failed``. Any other status outside 2xx
(4xx, redirects, which are not followed) dead-letters them at once with reason ``webhook_rejected``.
Dead letters carry the original delivered bytes and are flushed before ``write`` returns.
"""

from __future__ import annotations

import hashlib
import http.client
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.sinks.base import Delivery, PartitionProgress, Sink
from connectors.sinks.errors import WEBHOOK_FAILED, WEBHOOK_REJECTED, SinkUnavailable
from connectors.sinks.json_format import delivery_object, dumps
from hub.core.log import get_logger

_RETRY_STATUSES = frozenset({408, 429})


class WebhookSinkConfig(BaseModel):
    """Config of a ``WebhookSink`` (``type: webhook`` in the sidecar's sink list)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook"] = "webhook"
    url: str = Field(description="http:// or https:// endpoint of the department's application")
    bearer_token: SecretStr | None = Field(default=None, description="sent as Authorization: Bearer ...")
    mode: Literal["batch", "single"] = "batch"
    max_batch: int = Field(default=100, ge=1, description="deliveries per request in batch mode")
    timeout_s: float = Field(default=10.0, gt=0, description="per request")
    max_attempts: int = Field(default=5, ge=1)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    dedup_keys: int = Field(default=100_000, ge=0, description="keys whose last sent seq is remembered")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parsed = urllib.parse.urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("url must be an absolute http:// or https:// URL")
        return value


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    reason: str = ""
    detail: str = ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would become a GET without the body: report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookSink(Sink):
    """At-least-once POSTs to an application, with retries and dead letters (see the module docstring)."""

    stores_offsets = False

    def __init__(self, config: WebhookSinkConfig) -> None:
        super().__init__()
        self.config = config
        parts = urllib.parse.urlsplit(config.url)
        # Messages and logs name the endpoint without its query string, which may carry a token.
        self.endpoint = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._last_seq: OrderedDict[str, int] = OrderedDict()
        self._closing = threading.Event()
        self._log = get_logger("sink.webhook", endpoint=self.endpoint)
        self._headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "exchange-hub-webhook-sink",
            **config.headers,
        }
        if config.bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {config.bearer_token.get_secret_value()}"

    def open(self) -> None:
        """Ready to post again after a ``close`` (the sidecar restarts a failed sink loop)."""
        self._closing.clear()

    def write(self, batch: Sequence[Delivery], progress: Sequence[PartitionProgress] | None = None) -> None:
        """POST the batch; dead-letter what the application did not take after retries.

        ``progress`` is not used: this sink keeps no offsets (the loop commits them to Kafka).
        """
        del progress
        fresh = [d for d in batch if self._is_new(d)]
        if self.config.mode == "single":
            requests = [[d] for d in fresh]
        else:
            size = self.config.max_batch
            requests = [fresh[i : i + size] for i in range(0, len(fresh), size)]
        dead = 0
        for deliveries in requests:
            outcome = self._post(deliveries)
            if outcome.ok:
                self._remember(deliveries)
                continue
            for d in deliveries:
                self.dead_letters.publish(d, outcome.reason, outcome.detail)
            dead += len(deliveries)
        if dead:
            self.dead_letters.flush()
            self._log.warning("deliveries_dead_lettered", records=dead)

    def _is_new(self, d: Delivery) -> bool:
        last = self._last_seq.get(d.key)
        return last is None or d.seq > last

    def _remember(self, deliveries: Sequence[Delivery]) -> None:
        limit = self.config.dedup_keys
        if not limit:
            return
        memory = self._last_seq
        for d in deliveries:
            memory[d.key] = d.seq
            memory.move_to_end(d.key)
        while len(memory) > limit:
            memory.popitem(last=False)

    def _body(self, deliveries: Sequence[Delivery]) -> tuple[bytes, str]:
        if self.config.mode == "single":
            d = deliveries[0]
            return dumps(delivery_object(d)).encode("utf-8"), d.event_id
        digest = hashlib.sha256("\n".join(d.event_id for d in deliveries).encode("utf-8")).hexdigest()
        body = dumps({"deliveries": [delivery_object(d) for d in deliveries]})
        return body.encode("utf-8"), f"batch-{digest[:32]}"

    def _post(self, deliveries: Sequence[Delivery]) -> _Outcome:
        body, idempotency_key = self._body(deliveries)
        headers = {**self._headers, "Idempotency-Key": idempotency_key, "X-Xhub-Count": str(len(deliveries))}
        cfg = self.config
        problem = ""
        for attempt in range(1, cfg.max_attempts + 1):
            request = urllib.request.Request(cfg.url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked in config
            retry_after: float | None = None
            try:
                with self._opener.open(request, timeout=cfg.timeout_s) as response:
                    response.read()
                return _Outcome(ok=True)
            except urllib.error.HTTPError as exc:
                status = exc.code
                exc.close()
                problem = f"HTTP {status}"
                if status < 500 and status not in _RETRY_STATUSES:
                    return _Outcome(False, WEBHOOK_REJECTED, f"POST {self.endpoint} answered {problem}")
                retry_after = _seconds(exc.headers.get("Retry-After") if exc.headers else None)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                problem = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
            if attempt == cfg.max_attempts:
                break
            delay = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = max(delay, min(retry_after, cfg.backoff_max_s))
            self._log.warning("webhook_retry", attempt=attempt, problem=problem, delay_s=delay)
            if self._closing.wait(delay):
                # Shutting down is not the application's fault: no dead letter, no offsets committed;
                # the batch comes again after the restart.
                raise SinkUnavailable(f"webhook sink for {self.endpoint} closed while retrying: {problem}")
        return _Outcome(
            False, WEBHOOK_FAILED, f"POST {self.endpoint} failed after {cfg.max_attempts} attempts: {problem}"
        )

    def close(self) -> None:
        """Cut short a backoff wait in progress; that ``write`` raises ``SinkUnavailable``."""
        self._closing.set()


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
