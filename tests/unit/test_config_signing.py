"""Signed config snapshots (issue 15, point 3): what a hub verifies before it reads a config record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from hub.config import load_config
from hub.config.models import ConfigSigning
from hub.config.signing import (
    SnapshotRefused,
    SnapshotVerifier,
    apply_signing_key,
    generate_key_pair,
    parse_private_key,
    parse_public_key,
    public_key_text,
    signed_snapshot_record,
    snapshot_verifier,
)
from hub.config.snapshot import config_snapshot, snapshot_record
from hub.core.errors import ConfigError

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "config"
KEY = Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def snapshot() -> bytes:
    return config_snapshot(load_config(DEMO), "pudong")


def _verifier(*keys: Ed25519PrivateKey) -> SnapshotVerifier:
    return SnapshotVerifier.of_keys(k.public_key() for k in keys)


def test_a_signed_record_verifies_and_reads_back(snapshot: bytes) -> None:
    body = _verifier(KEY).verify(signed_snapshot_record(snapshot, 1000, KEY))
    assert body["config"] == json.loads(snapshot)
    assert body["applied_ts_ms"] == 1000


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda s: snapshot_record(s, 1000), "unsigned"),
        (lambda s: signed_snapshot_record(s, 1000, Ed25519PrivateKey.generate()), "does not trust"),
        (lambda s: b"\xff not json", "not a config snapshot"),
        (lambda s: b"[1, 2]", "not a JSON object"),
    ],
)
def test_records_not_signed_by_a_trusted_key_are_refused(snapshot: bytes, make: object, why: str) -> None:
    with pytest.raises(SnapshotRefused, match=why):
        _verifier(KEY).verify(make(snapshot))  # type: ignore[operator]


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b["config"]["subscriptions"]["tax-debtors"]["fields"].append("court_secret"),
        lambda b: b.update(applied_ts_ms=b["applied_ts_ms"] + 1),
        lambda b: b.update(digest="0" * 16),
        lambda b: b["config"].update(hub="city"),
    ],
    ids=["policy", "time", "digest", "hub"],
)
def test_a_signed_record_altered_afterwards_is_refused(snapshot: bytes, edit: object) -> None:
    body = json.loads(signed_snapshot_record(snapshot, 1000, KEY))
    edit(body)  # type: ignore[operator]
    with pytest.raises(SnapshotRefused, match="does not verify"):
        _verifier(KEY).verify(json.dumps(body, ensure_ascii=False).encode())


def test_an_older_signed_record_replayed_is_refused(snapshot: bytes) -> None:
    verifier = _verifier(KEY)
    old = signed_snapshot_record(snapshot, 1000, KEY)
    verifier.verify(old)
    verifier.verify(signed_snapshot_record(snapshot, 2000, KEY))
    with pytest.raises(SnapshotRefused, match="older config replayed"):
        verifier.verify(old)


def test_a_hub_that_trusts_no_key_installs_nothing(snapshot: bytes) -> None:
    with pytest.raises(SnapshotRefused, match="trusts no config signing key"):
        SnapshotVerifier.of_keys([]).verify(signed_snapshot_record(snapshot, 1, KEY))


def test_two_trusted_keys_during_a_rotation(snapshot: bytes) -> None:
    new = Ed25519PrivateKey.generate()
    verifier = _verifier(KEY, new)
    verifier.verify(signed_snapshot_record(snapshot, 1, KEY))
    verifier.verify(signed_snapshot_record(snapshot, 2, new))


def test_public_keys_from_hubs_yaml_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    other = Ed25519PrivateKey.generate()
    pem = (
        other.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    monkeypatch.setenv("MY_KEYS", public_key_text(KEY.public_key()))
    verifier = snapshot_verifier(ConfigSigning(public_keys=[pem], public_key_env="MY_KEYS"))
    assert len(verifier.trusted) == 2


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ed25519:AAAA", "32 bytes"),
        ("not base64 at all!", "not base64"),
        ("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----", "not a PEM public key"),
    ],
)
def test_a_bad_public_key_is_a_config_error_naming_where(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        snapshot_verifier(ConfigSigning(public_keys=[text]))
    assert "config_signing.public_keys[0]" in str(info.value)


def test_a_bad_private_key_never_shows_in_the_error() -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXZhbHVl\n-----END PRIVATE KEY-----"
    with pytest.raises(ConfigError) as info:
        parse_private_key(SecretStr(secret), "XHUB_CONFIG_SIGNING_KEY")
    assert "c2VjcmV0LXZhbHVl" not in str(info.value)


def test_apply_needs_the_signing_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XHUB_CONFIG_SIGNING_KEY", raising=False)
    monkeypatch.delenv("XHUB_SECRETS_DIR", raising=False)
    with pytest.raises(ConfigError, match="XHUB_CONFIG_SIGNING_KEY"):
        apply_signing_key()
    key_path, pub_path = generate_key_pair(tmp_path / "keys")
    assert key_path.stat().st_mode & 0o777 == 0o600
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "xhub_config_signing_key").write_text(key_path.read_text())
    monkeypatch.setenv("XHUB_SECRETS_DIR", str(secrets))
    key = apply_signing_key()  # from the secrets directory
    assert public_key_text(key.public_key()) == pub_path.read_text().strip()
    assert parse_public_key(pub_path.read_text(), "x") is not None
