"""Signed config snapshots: `xhub apply` signs what it publishes, a hub installs only what verifies.

Anyone who may write ``xhub.cfg.<hub>`` could otherwise change a hub's policy (classifications, share
attributes, approvals). So the apply role signs every record with its Ed25519 key and a hub checks the
signature against the public keys it trusts (``config_signing`` in hubs.yaml, or the environment
variable it names, ``XHUB_CONFIG_PUBLIC_KEY`` by default) before it reads anything else of the record.

What is signed: the canonical JSON of the record without its ``signature`` (digest, time of the apply,
the config), so the hub name, the policy and the time are all covered. The digest is checked against the
config as well, and a record applied before the newest one a hub verified is refused as a replay.

Key formats: a public key is the base64 of its 32 raw bytes (optionally ``ed25519:`` in front) or a PEM
``PUBLIC KEY``; a private key is a PEM ``PRIVATE KEY`` (PKCS#8) or the base64 of its 32-byte seed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import SecretStr

from hub.config.credentials import process_secrets
from hub.config.models import ConfigSigning
from hub.config.snapshot import snapshot_digest, snapshot_record
from hub.core.errors import ConfigError

ALGORITHM = "ed25519"
SIGNATURE_FIELD = "signature"
DEFAULT_PUBLIC_KEY_ENV = "XHUB_CONFIG_PUBLIC_KEY"
_CONTEXT = b"xhub.cfg.v1\n"  # a signature made for something else never verifies as a config record


class SnapshotRefused(Exception):  # noqa: N818 - a verdict carried to live_policy, not a crash
    """A config record that must not be installed; the message says why (never the key itself)."""


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{what}: not base64 ({exc})") from exc


def key_id(public: Ed25519PublicKey) -> str:
    """A short name for a public key (in records, alerts and logs; rotation keeps several)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    """The form hubs.yaml and ``XHUB_CONFIG_PUBLIC_KEY`` take: ``ed25519:<base64 of 32 bytes>``."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{ALGORITHM}:{base64.b64encode(raw).decode()}"


def parse_public_key(text: str, what: str) -> Ed25519PublicKey:
    """A public key from its text (see the module docstring); ``what`` names where it came from.

    Raises:
        ConfigError: not an Ed25519 public key.
    """
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise ConfigError(f"{what}: not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{what}: a {type(key).__name__}, not an Ed25519 public key")
        return key
    raw = _b64decode(text.removeprefix(f"{ALGORITHM}:"), what)
    if len(raw) != 32:
        raise ConfigError(f"{what}: an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def parse_private_key(secret: SecretStr, what: str) -> Ed25519PrivateKey:
    """The apply role's private key from its secret (PEM PKCS#8, or base64 of the 32-byte seed).

    Raises:
        ConfigError: not an Ed25519 private key (the message never quotes the secret).
    """
    text = secret.get_secret_value().strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{what}: not an unencrypted PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{what}: not an Ed25519 private key")
        return key
    raw = _b64decode(text, what)
    if len(raw) != 32:
        raise ConfigError(f"{what}: an Ed25519 private key seed is 32 bytes, this one is {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def generate_key_pair(folder: Path) -> tuple[Path, Path]:
    """Write a new key pair to ``folder``: ``config-signing.key`` (PEM, mode 0600) and ``.pub``.

    For the local demo and tests; in production the apply role's key is made and kept where the
    department keeps its other keys, and only the public key is written into hubs.yaml.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path, pub_path = folder / "config-signing.key", folder / "config-signing.pub"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    pub_path.write_text(public_key_text(private.public_key()) + "\n", encoding="utf-8")
    return key_path, pub_path


def local_key_pair(folder: Path) -> tuple[SecretStr, str]:
    """(private key, public key text) of the key pair in ``folder``, generated on first use."""
    key_path, pub_path = folder / "config-signing.key", folder / "config-signing.pub"
    if not key_path.exists() or not pub_path.exists():
        generate_key_pair(folder)
    return SecretStr(key_path.read_text(encoding="utf-8")), pub_path.read_text(encoding="utf-8").strip()


def sign_record(body: Mapping[str, Any], private: Ed25519PrivateKey) -> dict[str, Any]:
    """``body`` (a config record: digest, applied_ts_ms, config) with its ``signature`` added."""
    unsigned = {k: v for k, v in body.items() if k != SIGNATURE_FIELD}
    signature = private.sign(_CONTEXT + _canonical(unsigned))
    return {
        **unsigned,
        SIGNATURE_FIELD: {
            "alg": ALGORITHM,
            "key_id": key_id(private.public_key()),
            "value": base64.b64encode(signature).decode(),
        },
    }


def signed_snapshot_record(snapshot: bytes, applied_ts_ms: int, private: Ed25519PrivateKey) -> bytes:
    """The value of one xhub.cfg.<hub> record (``snapshot_record``), signed by the apply role."""
    body = json.loads(snapshot_record(_canonical(json.loads(snapshot)), applied_ts_ms))
    return json.dumps(sign_record(body, private), ensure_ascii=False).encode("utf-8")


@dataclass
class SnapshotVerifier:
    """Checks config records against the public keys a hub trusts; remembers the newest it accepted."""

    trusted: dict[str, Ed25519PublicKey]  # key id -> key
    newest_applied_ms: int = 0

    @classmethod
    def of_keys(cls, keys: Iterable[Ed25519PublicKey]) -> SnapshotVerifier:
        return cls({key_id(k): k for k in keys})

    @classmethod
    def from_environment(cls) -> SnapshotVerifier:
        """The keys of ``XHUB_CONFIG_PUBLIC_KEY`` (unset: none, and every applied config is refused)."""
        return snapshot_verifier(ConfigSigning())

    def verify(self, raw: bytes) -> dict[str, Any]:
        """The record ``raw`` parsed, once its signature, digest and time check out.

        Raises:
            SnapshotRefused: unsigned, signed by a key the hub does not trust, tampered with, a digest
                that does not match the config, or older than a record already accepted (a replay).
        """
        if not self.trusted:
            raise SnapshotRefused(
                "the hub trusts no config signing key (config_signing in hubs.yaml, or "
                f"{DEFAULT_PUBLIC_KEY_ENV}): it installs no applied config"
            )
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise SnapshotRefused(f"not a config snapshot ({type(exc).__name__})") from exc
        if not isinstance(body, dict):
            raise SnapshotRefused("not a config snapshot (not a JSON object)")
        signature = body.pop(SIGNATURE_FIELD, None)
        if not isinstance(signature, dict):
            raise SnapshotRefused("unsigned: not published by `xhub apply` with the apply role's key")
        kid = str(signature.get("key_id", ""))[:32]
        key = self.trusted.get(kid)
        if signature.get("alg") != ALGORITHM or key is None:
            raise SnapshotRefused(f"signed by key {kid!r}, which the hub does not trust")
        try:
            value = base64.b64decode(str(signature.get("value", "")), validate=True)
            key.verify(value, _CONTEXT + _canonical(body))
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise SnapshotRefused(
                f"the signature of key {kid} does not verify: the record was altered"
            ) from exc
        config = body.get("config")
        if not isinstance(config, dict) or body.get("digest") != snapshot_digest(_canonical(config)):
            raise SnapshotRefused("the digest does not match the config it names")
        applied = body.get("applied_ts_ms")
        if not isinstance(applied, int):
            raise SnapshotRefused("no applied_ts_ms")
        if applied < self.newest_applied_ms:
            raise SnapshotRefused(
                f"applied at {applied} ms, before the newest verified config "
                f"({self.newest_applied_ms} ms): an older config replayed"
            )
        self.newest_applied_ms = applied
        return body


def snapshot_verifier(signing: ConfigSigning) -> SnapshotVerifier:
    """The verifier of a hub: the public keys of hubs.yaml ``config_signing`` and of its environment
    variable (several keys during a rotation).

    Raises:
        ConfigError: a key is not an Ed25519 public key (which one, by position or variable).
    """
    keys = [
        parse_public_key(text, f"hubs.yaml: config_signing.public_keys[{i}]")
        for i, text in enumerate(signing.public_keys)
    ]
    env = os.environ.get(signing.public_key_env, "")
    keys += [
        parse_public_key(text, f"environment variable {signing.public_key_env}")
        for text in env.split(",")
        if text.strip()
    ]
    return SnapshotVerifier.of_keys(keys)


def apply_signing_key() -> Ed25519PrivateKey:
    """The apply role's private key: ``XHUB_CONFIG_SIGNING_KEY`` or the secrets directory's
    ``xhub_config_signing_key`` file.

    Raises:
        ConfigError: neither is set, or the value is not an Ed25519 private key.
    """
    secret = process_secrets().config_signing_key
    if secret is None:
        raise ConfigError(
            "xhub apply signs the config snapshots it publishes: set XHUB_CONFIG_SIGNING_KEY, or put the "
            "key in the file xhub_config_signing_key of XHUB_SECRETS_DIR (hubs install only signed configs)"
        )
    return parse_private_key(secret, "the config signing key (XHUB_CONFIG_SIGNING_KEY)")
