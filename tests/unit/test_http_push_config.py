"""Who may push, and from where (issue 15, point 5): the HTTP push source's config refuses the unsafe."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from connectors.sources.http_push import HttpPushSourceConfig

BASE: dict[str, Any] = {"name": "push", "resources": ["PD-POP-0001"]}


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({}, "set token_secret"),
        ({"host": "0.0.0.0", "token_secret": "push_token"}, "beyond loopback: set tls"),
        ({"host": "10.1.2.3", "token_secret": "push_token"}, "beyond loopback: set tls"),
        ({"host": "::", "allow_anonymous": True}, "beyond loopback"),
        (
            {"host": "10.1.2.3", "allow_anonymous": True, "tls": {"cert_file": "c", "key_file": "k"}},
            "only for a loopback host",
        ),
        ({"token_secret": "Not-A-Name"}, "token_secret"),
    ],
)
def test_unsafe_push_endpoints_are_refused(extra: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        HttpPushSourceConfig.model_validate({**BASE, **extra})


@pytest.mark.parametrize(
    "extra",
    [
        {"token_secret": "push_token"},
        {"host": "::1", "allow_anonymous": True},
        {"host": "10.1.2.3", "tls": {"cert_file": "c", "key_file": "k", "client_ca_file": "ca"}},
        {"host": "10.1.2.3", "token_secret": "push_token", "tls": {"cert_file": "c", "key_file": "k"}},
    ],
)
def test_authenticated_or_loopback_endpoints_are_accepted(extra: dict[str, Any]) -> None:
    config = HttpPushSourceConfig.model_validate({**BASE, **extra})
    assert config.limits().max_concurrent == 8
