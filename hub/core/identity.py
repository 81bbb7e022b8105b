"""Who is calling: one identity per party, the subject of its client certificate (mutual TLS).

Every party (a department's sidecar, a hub, the registry, the apply role, an operator) holds one
certificate issued by the deployment's certificate authority, whose common name is the party's name. The
same name is its Kafka principal (``User:<CN>``, by the broker's ``ssl.principal.mapping.rules``), its
identity at the registry and at an HTTP push source: one credential, checked the same way everywhere.
"""

from __future__ import annotations

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
