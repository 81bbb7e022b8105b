"""Who is calling: one identity per party, the subject of its client certificate (mutual TLS).

Every party (a department's sidecar, a hub, the registry, the apply role, an operator) holds one
certificate issued by the deployment's certificate authority, whose common name is the party's name. The
same name is its Kafka principal (``User:<CN>``, by the broker's ``ssl.principal.mapping.rules``), its
identity at the registry and at an HTTP push source: one credential, checked the same way everywhere.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

USER = "User:"


def principal_of_peercert(cert: Mapping[str, Any] | None) -> str | None:
    """``User:<CN>`` of a verified peer certificate (``ssl.SSLSocket.getpeercert()``); None without one."""
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and value:
                return f"{USER}{value}"
    return None


def party_name(principal: str) -> str:
    """The party's name of a principal (``User:court`` -> ``court``)."""
    return principal.removeprefix(USER)


def tls_context(cafile: str, certfile: str, keyfile: str, *, server: bool) -> ssl.SSLContext:
    """A mutual-TLS context of one party: its certificate and key, peers verified against the CA."""
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    context = ssl.create_default_context(purpose, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    context.verify_mode = ssl.CERT_REQUIRED
    return context
