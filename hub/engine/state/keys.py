"""The keyed hash under which the state store knows a business key.

The state topic must not carry personal data, and a business key often is some (an ID number, a case
number naming a person): the store keeps HMAC-SHA256(hub secret, purpose, resource, key), cut to 16
bytes (collisions among the keys of one partition stay out of reach). Whoever reads the state topic
without the hub's secret can neither reverse a hash nor test a guessed key. The purpose label keeps these
hashes apart from the audit's key hashes (hub.audit.chain.key_hash), so the two cannot be joined.
"""

from __future__ import annotations

import hmac

KEY_HASH_BYTES = 16
_PURPOSE = b"xhub-state-held-key\x00"


def held_key(secret: bytes, resource: str, key: str) -> bytes:
    """The store's name for business key ``key`` of ``resource``."""
    message = _PURPOSE + resource.encode() + b"\x00" + key.encode()
    return hmac.digest(secret, message, "sha256")[:KEY_HASH_BYTES]  # one-shot: no HMAC object per key
