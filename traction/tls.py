"""TLS for the HTTP service on a clinic network: when it may listen, and certificates for a clinic
without a PKI of its own.

Bearer tokens and patient data must not cross a LAN in clear, so ``traction serve`` refuses a
non-loopback address unless it presents a certificate or is told a TLS proxy on the machine
terminates TLS for it. ``self_signed`` makes a small clinic authority (install its certificate
on the clinic's computers once) and a server certificate signed by it for the workstation's
names and addresses; the keys are made and signed by the ``cryptography`` package.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devices.errors import ConfigError
from traction.settings import Settings

MAX_SERVER_DAYS = 825
"""Browsers refuse server certificates valid for longer (CA/Browser Forum)."""
CA_DAYS = 3650


def is_loopback(host: str) -> bool:
    """Only addresses that never leave the machine; a host name other than localhost is taken
    as reachable from the network (it may resolve to anything)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse to serve plain HTTP to the network. Loopback is always allowed; anything else needs
    tls_certfile/tls_keyfile, or behind_tls_proxy when a proxy on this machine does TLS."""
    if is_loopback(host) or settings.tls or settings.behind_tls_proxy:
        if settings.tls:
            _check_files(settings)
        return
    raise ConfigError(
        "bind_host",
        f"{host} is reachable from the network, and without TLS bearer tokens and patient data "
        "would cross it in clear. Set tls_certfile and tls_keyfile (a clinic without its own "
        "certificates: `traction tls self-signed --host NAME --out DIR`), or set "
        "behind_tls_proxy = true if a TLS proxy on this machine is what the network reaches",
    )


def _check_files(settings: Settings) -> None:
    assert settings.tls_certfile is not None and settings.tls_keyfile is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_certfile, settings.tls_keyfile)
    except FileNotFoundError as exc:
        raise ConfigError("tls_certfile", f"{exc.filename}: file not found") from None
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            "tls_certfile",
            f"{settings.tls_certfile} and {settings.tls_keyfile} are not a PEM certificate and "
            f"its private key ({exc})",
        ) from None


@dataclass(frozen=True)
class IssuedFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "traction clinic"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _write_private(path: Path, data: bytes) -> None:
    """A private key, readable by its owner only from the moment it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    path.chmod(0o600)


def self_signed(
    hosts: list[str], out: Path, days: int = 365, now: datetime | None = None
) -> IssuedFiles:
    """A clinic authority (``ca.pem``; its key ``ca-key.pem`` stays here for the next server
    certificate) and a server certificate ``server.pem`` with key ``server-key.pem`` for
    ``hosts`` (names and IP addresses), valid ``days``."""
    if not hosts:
        raise ConfigError("--host", "name at least one host name or IP address clients will use")
    if not 1 <= days <= MAX_SERVER_DAYS:
        raise ConfigError("--days", f"{days} must be 1 to {MAX_SERVER_DAYS} (browsers refuse more)")
    out.mkdir(parents=True, exist_ok=True)
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)
    ca_key_path = out / "ca-key.pem"
    ca_cert_path = out / "ca.pem"
    if ca_key_path.exists() and ca_cert_path.exists():
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey), "ca-key.pem is not an EC key"
        ca_key = loaded
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _authority(ca_key, start)
        _write_private(
            ca_key_path,
            ca_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        ca_cert_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = out / "server-key.pem"
    _write_private(
        server_key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    server_cert = out / "server.pem"
    server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return IssuedFiles(ca_cert_path, server_cert, server_key)


def _authority(key: ec.EllipticCurvePrivateKey, start: datetime) -> x509.Certificate:
    name = _name("traction clinic authority")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
