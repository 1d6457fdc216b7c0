"""The lab's certificate authority and host certificates: made per checkout, never committed.

A real estate uses its institution's CA; the lab makes its own under .lab/pki/
(git-ignored) so roles are proven with real TLS. Hosts trust the CA through the
common role; each host gets a certificate for what :func:`host_names` says it must
answer to: its FQDN, short name, address and the service names clients use (smtp,
imap, pop, mail[a-z], ...). The prechecks of a deploy (:mod:`hermes.precheck`) hold
every estate's certificates, the lab's and a real one's, to the same rule.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hermes.loader import LoadedEstate
from hermes.render.dns import service_names

_VALIDITY = datetime.timedelta(days=3650)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostNames(NamedTuple):
    """What a host's certificate must name: its DNS names (its FQDN first) and its addresses."""

    dns: list[str]
    addresses: list[Address]


def host_names(loaded: LoadedEstate, host: str) -> HostNames:
    """Every name and address a client may reach ``host`` by, so its certificate must name."""
    return HostNames(list(dict.fromkeys(service_names(loaded, host))), [ipaddress.ip_address(str(loaded.addresses[host]))])


def certificate_names(certificate: x509.Certificate) -> HostNames:
    """The DNS names and addresses a certificate's subjectAltName holds (none without one)."""
    try:
        alternatives = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return HostNames([], [])
    # A subjectAltName holds addresses only; networks are for name constraints.
    addresses = [a for a in alternatives.get_values_for_type(x509.IPAddress) if isinstance(a, Address)]
    return HostNames(alternatives.get_values_for_type(x509.DNSName), addresses)


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


def ensure_host_certificate(directory: Path, host: str, names: HostNames) -> Path:
    """Issue ``hosts/<host>.crt`` and ``.key`` from the lab CA for ``names``, unless they exist
    and the certificate names exactly those (a host's names change with the estate); return the
    certificate."""
    hosts = directory / "hosts"
    certificate, key = hosts / f"{host}.crt", hosts / f"{host}.key"
    if certificate.exists() and key.exists():
        held = certificate_names(x509.load_pem_x509_certificate(certificate.read_bytes()))
        if (set(held.dns), set(held.addresses)) == (set(names.dns), set(names.addresses)):
            return certificate
    hosts.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    private = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    alternatives: list[x509.GeneralName] = [x509.DNSName(n) for n in names.dns]
    alternatives += [x509.IPAddress(a) for a in names.addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names.dns[0])]))
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
        ensure_host_certificate(directory, host.name, host_names(loaded, host.name))
