"""The lab CA and host certificates."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from hermes.lab.pki import ensure_ca, ensure_host_certificate
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from hermes.render.dns import service_names


def test_host_certificate_is_signed_by_the_ca_for_its_service_names(tmp_path: Path) -> None:
    loaded = load_estate(PROJECT_ROOT / "inventory" / "estates" / "lab.yml")
    ca_path = ensure_ca(tmp_path, "lab")
    names = service_names(loaded, "ppsw-1")
    assert names[:2] == ["ppsw-1.lab.test", "ppsw-1"]
    assert {"smtp.lab.test", "imap.lab.test", "pop.lab.test"} <= set(names)
    cert_path = ensure_host_certificate(tmp_path, "ppsw-1", names, ["10.251.0.52"])
    ca, cert = (x509.load_pem_x509_certificate(p.read_bytes()) for p in (ca_path, cert_path))
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == set(names)
    assert oct((tmp_path / "hosts" / "ppsw-1.key").stat().st_mode & 0o777) == "0o600"
    # A second call keeps what exists (the control: a missing certificate is issued anew,
    # with a new key, so the comparison would see a reissue).
    before = cert_path.read_bytes()
    ensure_host_certificate(tmp_path, "ppsw-1", names, ["10.251.0.52"])
    assert cert_path.read_bytes() == before
    cert_path.unlink()
    ensure_host_certificate(tmp_path, "ppsw-1", names, ["10.251.0.52"])
    assert cert_path.read_bytes() != before


def test_store_names_cover_its_letters() -> None:
    loaded = load_estate(PROJECT_ROOT / "inventory" / "estates" / "lab.yml")
    # cyrus-1 holds a-m, cyrus-2 n-z: each member's certificate names its pair's letters only.
    names = service_names(loaded, "store-1b")
    assert "maila.lab.test" in names and "mailm.lab.test" in names
    assert "mailn.lab.test" not in names
    assert "mailz.lab.test" in service_names(loaded, "store-2b")
