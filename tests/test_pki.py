"""The lab CA and host certificates."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from hermes.lab.pki import HostNames, certificate_names, ensure_ca, ensure_host_certificate, host_names
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from hermes.render.dns import service_names


def test_host_certificate_is_signed_by_the_ca_for_its_service_names(tmp_path: Path) -> None:
    loaded = load_estate(PROJECT_ROOT / "inventory" / "estates" / "lab.yml")
    ca_path = ensure_ca(tmp_path, "lab")
    names = host_names(loaded, "ppsw-1")
    assert names.dns[:2] == ["ppsw-1.lab.test", "ppsw-1"]
    assert {"smtp.lab.test", "imap.lab.test", "pop.lab.test"} <= set(names.dns)
    assert names.dns == service_names(loaded, "ppsw-1")
    assert names.addresses == [ipaddress.ip_address("10.251.0.52")]
    cert_path = ensure_host_certificate(tmp_path, "ppsw-1", names)
    ca, cert = (x509.load_pem_x509_certificate(p.read_bytes()) for p in (ca_path, cert_path))
    cert.verify_directly_issued_by(ca)
    assert certificate_names(cert) == names
    assert oct((tmp_path / "hosts" / "ppsw-1.key").stat().st_mode & 0o777) == "0o600"
    # A second call keeps what exists (the control: a missing certificate is issued anew,
    # with a new key, so the comparison would see a reissue).
    before = cert_path.read_bytes()
    ensure_host_certificate(tmp_path, "ppsw-1", names)
    assert cert_path.read_bytes() == before
    cert_path.unlink()
    ensure_host_certificate(tmp_path, "ppsw-1", names)
    assert cert_path.read_bytes() != before


def test_a_certificate_is_reissued_when_its_hosts_names_change(tmp_path: Path) -> None:
    loaded = load_estate(PROJECT_ROOT / "inventory" / "estates" / "lab.yml")
    ensure_ca(tmp_path, "lab")
    names = host_names(loaded, "ppsw-1")
    older = HostNames([n for n in names.dns if n != "smtp.lab.test"], names.addresses)
    cert_path = ensure_host_certificate(tmp_path, "ppsw-1", older)
    before = cert_path.read_bytes()
    # The same names in another order are the same certificate; one name more is a new one.
    assert ensure_host_certificate(tmp_path, "ppsw-1", HostNames(older.dns[::-1], older.addresses)).read_bytes() == before
    ensure_host_certificate(tmp_path, "ppsw-1", names)
    assert cert_path.read_bytes() != before
    assert certificate_names(x509.load_pem_x509_certificate(cert_path.read_bytes())) == names


def test_store_names_cover_its_letters() -> None:
    loaded = load_estate(PROJECT_ROOT / "inventory" / "estates" / "lab.yml")
    # cyrus-1 holds a-m, cyrus-2 n-z: each member's certificate names its pair's letters only.
    names = service_names(loaded, "store-1b")
    assert "maila.lab.test" in names and "mailm.lab.test" in names
    assert "mailn.lab.test" not in names
    assert "mailz.lab.test" in service_names(loaded, "store-2b")
