"""A local certificate authority and one client/server certificate per party of a config directory.

``xhub credentials CONFIG_DIR --out DIR`` (and ``deploy/local/kafka.sh credentials CONFIG_DIR``) writes:

    DIR/ca.pem, DIR/ca.key                the CA (made once; kept: re-running issues only what is missing)
    DIR/<party>.pem, DIR/<party>.key      each party's certificate (CN = its name) and key, 0600
    DIR/<party>.bundle.pem                key + certificate chain in one PEM (Kafka's PEM keystore type)

The parties: every department (``principal`` of departments/*.yaml, default its id), every hub
(``hub-<name>``), the registry (``xhub-registry``), the apply role (``xhub-apply``), the operator tooling
(``xhub-operator``) and the broker's super user (``xhub-admin``). Certificates carry ``localhost`` and
127.0.0.1 as alternative names, so the broker's and the registry's serve as server certificates too.
Rotation: delete a party's files and run it again (a new key); delete the CA to re-issue everything.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.config.loader import ConfigDir
from hub.core.identity import USER
from hub.core.identity import tls_context as identity_tls
from hub.registry.authorization import Grantee

APPLY_ROLE = "xhub-apply"
REGISTRY = "xhub-registry"
OPERATOR = "xhub-operator"
SUPER_USER = "xhub-admin"
VALID_DAYS = 825


@dataclass(frozen=True)
class Party:
    """One identity: its certificate's common name and what it is (department, hub, or a role)."""

    name: str
    kind: str  # "department" | "hub" | "registry" | "apply" | "operator" | "admin"
    owner: str  # the department id or hub name it stands for ("" for a role)

    @property
    def principal(self) -> str:
        return f"{USER}{self.name}"


def hub_party(hub: str) -> str:
    return f"hub-{hub}"


def parties(cfg: ConfigDir) -> list[Party]:
    """Every identity of a config directory, in a stable order."""
    out = [
        Party((d.principal or d.id).removeprefix(USER), "department", d.id)
        for d in sorted(cfg.departments.values(), key=lambda d: d.id)
    ]
    out += [Party(hub_party(h), "hub", h) for h in sorted(cfg.hubs)]
    out += [
        Party(REGISTRY, "registry", ""),
        Party(APPLY_ROLE, "apply", ""),
        Party(OPERATOR, "operator", ""),
        Party(SUPER_USER, "admin", ""),
    ]
    return out


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    if not cert_path.exists() or not key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xhub local CA")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_private(key_path, _key_pem(key))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)  # written above, by us
    return cert, loaded


def issue(folder: Path, name: str) -> tuple[Path, Path]:
    """The certificate and key of party ``name`` in ``folder`` (CA made on first use); kept if present."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    ca_cert, ca_key = _load_ca(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert_pem)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    _write_private(folder / f"{name}.bundle.pem", _key_pem(key) + cert_pem + ca_pem)
    return cert_path, key_path


def write_credentials(cfg: ConfigDir, folder: Path) -> list[Party]:
    """The CA and the credentials of every party of ``cfg`` in ``folder``; returns the parties."""
    everyone = parties(cfg)
    for party in everyone:
        issue(folder, party.name)
    return everyone


def registry_grantees(cfg: ConfigDir) -> dict[str, Grantee]:
    """What each principal of ``cfg`` may write at the registry (hub.registry.authorization)."""
    return {p.principal: Grantee(p.kind, p.owner) for p in parties(cfg)}


def tls_context(folder: Path, name: str, *, server: bool) -> ssl.SSLContext:
    """A mutual-TLS context for party ``name`` from ``folder``: its certificate, the CA, peers verified."""
    return identity_tls(
        str(folder / "ca.pem"), str(folder / f"{name}.pem"), str(folder / f"{name}.key"), server=server
    )
