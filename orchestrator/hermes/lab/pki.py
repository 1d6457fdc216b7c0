"""The lab's certificate authority and host certificates: made per checkout, never committed.

A real estate uses its institution's CA; the lab makes its own under .lab/pki/
(git-ignored) so roles are proven with real TLS. Hosts trust the CA through the
common role; each host gets a certificate for its FQDN, short name, address and
the service names clients use (smtp, imap, pop, mail[a-z], ...).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hermes.loader import LoadedEstate
from hermes.render.dns import service_names

_VALIDITY = datetime.timedelta(days=3650)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def ensure_ca(directory: Path, estate: str) -> Path:
    """Create the lab CA in ``directory`` unless it exists; return the certificate's path."""
    certificate, key = directory / "ca.crt", directory / "ca.key"
    if certificate.exists() and key.exists():
        return certificate
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hermes lab CA ({estate})")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(private, hashes.SHA256())
    )
    _write_key(key, private)
    certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return certificate


def ensure_host_certificate(directory: Path, host: str, names: Iterable[str], addresses: Iterable[str]) -> Path:
    """Issue ``hosts/<host>.crt`` and ``.key`` from the lab CA unless they exist; return the certificate."""
    hosts = directory / "hosts"
    certificate, key = hosts / f"{host}.crt", hosts / f"{host}.key"
    if certificate.exists() and key.exists():
        return certificate
    hosts.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    names = list(dict.fromkeys(names))
    private = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    alternatives: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alternatives += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key, private)
    certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return certificate


def ensure_lab_pki(directory: Path, loaded: LoadedEstate) -> None:
    """The lab CA, and a certificate for every host of the estate."""
    ensure_ca(directory, loaded.estate.name)
    for host in loaded.estate.hosts:
        ensure_host_certificate(directory, host.name, service_names(loaded, host.name), [str(loaded.addresses[host.name])])
