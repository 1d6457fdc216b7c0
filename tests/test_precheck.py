"""The controller's prechecks of a deployment: every secret in the vault, every host's
certificate good for its names. Each refusal beside the acceptance it differs from."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.parsing.vault import VaultLib, VaultSecret
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hermes.credentials import vault_keys
from hermes.deploy import LabTarget, PromptedPassword, SiteTarget
from hermes.errors import Problem
from hermes.lab.pki import HostNames, ensure_lab_pki, host_names
from hermes.lab.ssh import lab_ssh
from hermes.lab.vault import ensure_lab_vault
from hermes.loader import LoadedEstate, load_estate
from hermes.paths import PROJECT_ROOT
from hermes.precheck import (
    Ca,
    Findings,
    HostTls,
    certificate_findings,
    certificates_findings,
    passed,
    secret_findings,
    vault_findings,
)
from hermes.render.inventory import SECRETS

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
VAULT = Path("/srv/mail/vault.yml")
CRT, KEY = Path("/srv/pki/hosts/ppsw-1.crt"), Path("/srv/pki/hosts/ppsw-1.key")
CA_FILE = Path("/srv/pki/ca.crt")


@pytest.fixture(scope="module")
def lab() -> LoadedEstate:
    return load_estate(PROJECT_ROOT / "inventory" / "estates" / "lab.yml")


# Vaults: what a complete one holds, written as ansible-vault writes it.


# The lab's keyed Cyrus secrets: an administrator per pair and per backup server, a replication
# account per pair (hermes.credentials).
KEYED = {"cyrus_admin_passwords": ["backup-1", "cyrus-1", "cyrus-2"], "cyrus_replication_passwords": ["cyrus-1", "cyrus-2"]}


def complete_vault(accounts: Collection[str], keyed: Mapping[str, Collection[str]] = KEYED) -> dict[str, Any]:
    """Every secret the rendered inventory refers to, and a password for each account."""
    variables: dict[str, Any] = {f"vault_hermes_{name}": f"{name} value" for name in SECRETS}
    for name, keys in keyed.items():
        variables[f"vault_hermes_{name}"] = {key: f"{name} of {key}" for key in keys}
    variables["vault_hermes_user_passwords"] = {user: f"password of {user}" for user in accounts}
    return variables


def write_vault(path: Path, variables: Any, password: str) -> Path:
    path.write_bytes(
        VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password.encode()))]).encrypt(yaml.safe_dump(variables).encode())
    )
    return path


def test_a_complete_vault_passes_and_a_missing_secret_fails() -> None:
    accounts = ["fanf2", "dpc22"]
    assert secret_findings(complete_vault(accounts), accounts, KEYED, VAULT) == Findings()
    lacking = complete_vault(accounts)
    del lacking["vault_hermes_webmail_des_key"]
    assert secret_findings(lacking, accounts, KEYED, VAULT) == Findings(
        (Problem("vault_hermes_webmail_des_key", f"missing from {VAULT}"),)
    )
    # Present but no use as a password: empty, or a YAML number (0123 would reach the role as 83).
    for value, reason in (("", "empty"), (None, "empty"), (83, "not a string (quote it in the vault)")):
        bad = complete_vault(accounts) | {"vault_hermes_mailman_admin_password": value}
        assert secret_findings(bad, accounts, KEYED, VAULT) == Findings(
            (Problem("vault_hermes_mailman_admin_password", f"{reason} in {VAULT}"),)
        )
    # A key the hubs refuse when short (roles/mta) is refused here, where the reason can be said.
    for name in ("srs_secret", "directory_replication_password"):
        short = complete_vault(accounts) | {f"vault_hermes_{name}": "x" * 15}
        assert secret_findings(short, accounts, KEYED, VAULT) == Findings(
            (Problem(f"vault_hermes_{name}", f"shorter than 16 characters in {VAULT}"),)
        )
        enough = complete_vault(accounts) | {f"vault_hermes_{name}": "x" * 16}
        assert secret_findings(enough, accounts, KEYED, VAULT) == Findings()
    # The mapping of user passwords itself is a secret like the others: missing is a problem.
    del lacking["vault_hermes_user_passwords"]
    assert secret_findings(lacking, accounts, KEYED, VAULT).problems == (
        Problem("vault_hermes_webmail_des_key", f"missing from {VAULT}"),
        Problem("vault_hermes_user_passwords", f"missing from {VAULT}"),
    )


def test_each_pair_and_backup_server_needs_its_own_cyrus_passwords(lab: LoadedEstate) -> None:
    # The lab's keys are its pairs and its backup server, as the estate says.
    assert vault_keys(lab.estate) == KEYED
    accounts = ["fanf2"]
    variables = complete_vault(accounts)
    assert secret_findings(variables, accounts, KEYED, VAULT) == Findings()
    admins = variables["vault_hermes_cyrus_admin_passwords"]
    del admins["cyrus-2"]
    admins["backup-1"] = 83
    admins["cyrus-9"] = "a pair the estate has not: ignored"
    assert secret_findings(variables, accounts, KEYED, VAULT) == Findings(
        (
            Problem("vault_hermes_cyrus_admin_passwords.backup-1", f"not a string (quote it in the vault) in {VAULT}"),
            Problem("vault_hermes_cyrus_admin_passwords.cyrus-2", f"missing in {VAULT}"),
        )
    )
    # One password for the whole estate, as vaults held before: refused.
    variables = complete_vault(accounts) | {"vault_hermes_cyrus_replication_passwords": "one for all"}
    assert secret_findings(variables, accounts, KEYED, VAULT) == Findings(
        (
            Problem(
                "vault_hermes_cyrus_replication_passwords",
                f"not a mapping of store pair or host to password in {VAULT}",
            ),
        )
    )


def test_an_account_without_a_password_warns_and_none_is_shown() -> None:
    accounts = [f"user{n:02}" for n in range(12)]
    variables = complete_vault(accounts)
    assert secret_findings(variables, accounts, KEYED, VAULT) == Findings()
    passwords = variables["vault_hermes_user_passwords"]
    # The vault holds initial passwords: an account with none (absent, null or empty) is
    # deployed, and cannot log in until one is set (docs/directory.md).
    del passwords["user03"]
    passwords["user07"] = ""
    passwords["user09"] = None
    # A password for a name that is not an account is nothing.
    passwords["departed"] = "old"
    assert secret_findings(variables, accounts, KEYED, VAULT) == Findings(
        warnings=(
            Problem(
                "vault_hermes_user_passwords",
                "no password for 3 of 12 accounts: user03, user07, user09; they cannot log in until one is set"
                " (docs/directory.md)",
            ),
        )
    )
    # Many without: the count, and the first few names.
    variables["vault_hermes_user_passwords"] = {"user00": "p"}
    findings = secret_findings(variables, accounts, KEYED, VAULT)
    assert findings.problems == ()
    assert [str(warning) for warning in findings.warnings] == [
        "vault_hermes_user_passwords: no password for 11 of 12 accounts: user01, user02, user03, user04, user05 and 6 more;"
        " they cannot log in until one is set (docs/directory.md)"
    ]
    variables["vault_hermes_user_passwords"] = ["user00"]
    assert secret_findings(variables, accounts, KEYED, VAULT) == Findings(
        (Problem("vault_hermes_user_passwords", f"not a mapping of username to password in {VAULT}"),)
    )


def test_a_user_password_that_is_not_a_string_is_a_problem_and_not_shown() -> None:
    accounts = [f"user{n:02}" for n in range(12)]
    variables = complete_vault(accounts)
    passwords = variables["vault_hermes_user_passwords"]
    # YAML read these as a number and a boolean: they would reach the directory changed.
    passwords["user05"] = 83
    passwords["user08"] = True
    # Not an account: ignored, whatever its value.
    passwords["departed"] = 1234
    (problem,) = secret_findings(variables, accounts, KEYED, VAULT).problems
    assert problem == Problem(
        "vault_hermes_user_passwords", "not a string for 2 of 12 accounts: user05, user08 (quote it in the vault)"
    )
    assert "83" not in str(problem) and "True" not in str(problem)
    # The control: quoted, both pass.
    passwords["user05"], passwords["user08"] = "83", "true"
    assert secret_findings(variables, accounts, KEYED, VAULT) == Findings()
    # Both at once: the wrong type stops the deploy, the missing one only warns.
    passwords["user05"] = 83
    del passwords["user01"]
    findings = secret_findings(variables, accounts, KEYED, VAULT)
    assert [str(problem) for problem in findings.problems] == [
        "vault_hermes_user_passwords: not a string for 1 of 12 accounts: user05 (quote it in the vault)"
    ]
    assert [str(warning) for warning in findings.warnings] == [
        "vault_hermes_user_passwords: no password for 1 of 12 accounts: user01; they cannot log in until one is set"
        " (docs/directory.md)"
    ]
    # Many: the count and the first five names, as for the missing.
    variables["vault_hermes_user_passwords"] = dict.fromkeys(accounts, 0)
    (problem,) = secret_findings(variables, accounts, KEYED, VAULT).problems
    assert str(problem).endswith(
        ": not a string for 12 of 12 accounts: user00, user01, user02, user03, user04 and 7 more (quote it in the vault)"
    )


def test_the_vault_opens_with_a_password_file_or_a_typed_password(tmp_path: Path, lab: LoadedEstate) -> None:
    vault = write_vault(tmp_path / "vault.yml", complete_vault(lab.accounts), "right horse")
    (tmp_path / "password").write_text("right horse\n")
    (tmp_path / "wrong").write_text("wrong horse\n")
    for password in (tmp_path / "password", PromptedPassword("right horse")):
        assert vault_findings(lab, SiteTarget(vault, password, tmp_path)) == Findings()
    # A wrong password is a problem, the same whether typed or in a file; no traceback, no value.
    for password in (tmp_path / "wrong", PromptedPassword("wrong horse")):
        findings = vault_findings(lab, SiteTarget(vault, password, tmp_path))
        assert findings == Findings((Problem("", f"{vault}: cannot be decrypted with the vault password given"),))
    # A file that is not a vault, and a vault whose text is no mapping of variables.
    plain = tmp_path / "plain.yml"
    plain.write_text(yaml.safe_dump(complete_vault(lab.accounts)))
    (problem,) = vault_findings(lab, SiteTarget(plain, tmp_path / "password", tmp_path)).problems
    assert str(problem) == f"{plain}: not an ansible-vault file (encrypt it with ansible-vault)"
    assert "password of" not in str(problem)
    listed = write_vault(tmp_path / "listed.yml", ["vault_hermes_x"], "right horse")
    (problem,) = vault_findings(lab, SiteTarget(listed, tmp_path / "password", tmp_path)).problems
    assert str(problem) == f"{listed}: decrypted, but not a mapping of variables"


def test_the_lab_vault_passes(tmp_path: Path, lab: LoadedEstate) -> None:
    vault, password = ensure_lab_vault(tmp_path, lab.accounts, KEYED)
    assert vault_findings(lab, LabTarget(vault, password, lab_ssh(tmp_path))) == Findings()
    # The control: the lab's vault without six accounts' passwords passes, warning of them.
    fewer = ensure_lab_vault(tmp_path / "fewer", ["fanf2"], KEYED)
    findings = vault_findings(lab, LabTarget(*fewer, lab_ssh(tmp_path)))
    assert findings.problems == ()
    (warning,) = findings.warnings
    assert str(warning).endswith(
        ": no password for 6 of 7 accounts: confide, cet1, dpc22, jmw41, ph10 and 1 more; they cannot log in until one is set"
        " (docs/directory.md)"
    )


# Certificates, made here: a CA, and host certificates with what each test changes.


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def authority(name: str = "hermes test CA") -> Authority:
    key, subject = _key(), x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, certificate)


def issue(
    ca: Authority, names: HostNames, *, start: datetime = NOW - timedelta(days=1), end: datetime = NOW + timedelta(days=365)
) -> HostTls:
    key = _key()
    alternatives: list[x509.GeneralName] = [x509.DNSName(n) for n in names.dns]
    alternatives += [x509.IPAddress(a) for a in names.addresses]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names.dns[0])]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return HostTls("ppsw-1", CRT, certificate, KEY, key)


@pytest.fixture(scope="module")
def ca() -> Authority:
    return authority()


def check(tls: HostTls, ca: Authority, names: HostNames) -> Findings:
    return certificate_findings(tls, names, Ca(CA_FILE, ca.certificate), NOW)


def test_a_certificate_must_name_everything_its_host_answers_to(ca: Authority, lab: LoadedEstate) -> None:
    names = host_names(lab, "ppsw-1")
    assert "smtp.lab.test" in names.dns
    assert check(issue(ca, names), ca, names) == Findings()
    lacking = HostNames([n for n in names.dns if n != "smtp.lab.test"], names.addresses)
    assert check(issue(ca, lacking), ca, names) == Findings(
        (Problem("ppsw-1", f"certificate {CRT} does not name smtp.lab.test"),)
    )
    no_address = HostNames(names.dns, [])
    assert check(issue(ca, no_address), ca, names).problems == (
        Problem("ppsw-1", f"certificate {CRT} does not name {names.addresses[0]}"),
    )
    # A wildcard stands for one first label (any case), never for the short name.
    wildcard = HostNames(["*.LAB.test", "ppsw-1"], names.addresses)
    assert check(issue(ca, wildcard), ca, names) == Findings()
    assert check(issue(ca, HostNames(["*.lab.test"], names.addresses)), ca, names).problems == (
        Problem("ppsw-1", f"certificate {CRT} does not name ppsw-1"),
    )
    assert check(issue(ca, HostNames(["*.test", "ppsw-1"], names.addresses)), ca, names).problems == (
        Problem("ppsw-1", f"certificate {CRT} does not name ppsw-1.lab.test, smtp.lab.test, imap.lab.test, pop.lab.test"),
    )


def test_a_certificate_must_be_signed_by_the_ca(ca: Authority, lab: LoadedEstate) -> None:
    names = host_names(lab, "ppsw-1")
    assert check(issue(ca, names), ca, names) == Findings()
    # Another CA's, and one naming this CA as its issuer but signed by another key.
    for other in (authority("someone else's CA"), authority(ca.certificate.subject.rfc4514_string().removeprefix("CN="))):
        issuer = other.certificate.subject.rfc4514_string()
        assert check(issue(other, names), ca, names).problems == (
            Problem("ppsw-1", f"certificate {CRT} is not signed by the CA {CA_FILE} (its issuer: {issuer})"),
        )


def test_a_certificate_must_be_valid_now_and_warns_a_month_before_it_ends(ca: Authority, lab: LoadedEstate) -> None:
    names = host_names(lab, "ppsw-1")
    assert check(issue(ca, names, end=NOW + timedelta(days=40)), ca, names) == Findings()
    soon = check(issue(ca, names, end=NOW + timedelta(days=10)), ca, names)
    assert soon == Findings(warnings=(Problem("ppsw-1", f"certificate {CRT} expires on 2025-06-11 12:00 UTC, in 10 days"),))
    expired = check(issue(ca, names, start=NOW - timedelta(days=400), end=NOW - timedelta(days=1)), ca, names)
    assert expired == Findings((Problem("ppsw-1", f"certificate {CRT} expired on 2025-05-31 12:00 UTC"),))
    early = check(issue(ca, names, start=NOW + timedelta(hours=2)), ca, names)
    assert early == Findings((Problem("ppsw-1", f"certificate {CRT} is not valid before 2025-06-01 14:00 UTC"),))


def test_the_key_must_be_the_certificates(ca: Authority, lab: LoadedEstate) -> None:
    names = host_names(lab, "ppsw-1")
    good, other = issue(ca, names), issue(ca, names)
    assert check(good, ca, names) == Findings()
    swapped = HostTls("ppsw-1", CRT, good.certificate, KEY, other.key)
    assert check(swapped, ca, names) == Findings((Problem("ppsw-1", f"key {KEY} does not match certificate {CRT}"),))


def test_the_labs_certificates_pass_and_missing_or_unreadable_files_fail(tmp_path: Path, lab: LoadedEstate) -> None:
    # pki.py issues by the same rule the precheck holds every certificate to: they agree on every host.
    ensure_lab_pki(tmp_path, lab)
    assert certificates_findings(lab, tmp_path, datetime.now(UTC)) == Findings()
    assert passed(lab) == f"prechecks: vault ({len(SECRETS)} secrets, passwords of 7 accounts), certificates (9 hosts) ok"
    hosts = tmp_path / "hosts"
    (hosts / "ppsw-2.key").unlink()
    (hosts / "dns-1.crt").write_text("not a certificate\n")
    # A key file cut short, as a failed copy leaves it.
    key = (hosts / "store-1a.key").read_bytes()
    (hosts / "store-1a.key").write_bytes(key[: len(key) // 2])
    assert certificates_findings(lab, tmp_path, datetime.now(UTC)).problems == (
        Problem("ppsw-2", f"{hosts}/ppsw-2.key is missing"),
        Problem("store-1a", f"{hosts}/store-1a.key is not an unencrypted PEM private key"),
        Problem("dns-1", f"{hosts}/dns-1.crt is not a PEM certificate"),
    )
    # Without the CA, each certificate is still checked but for its signature.
    (tmp_path / "ca.crt").unlink()
    problems = certificates_findings(lab, tmp_path, datetime.now(UTC)).problems
    assert problems[0] == Problem("CA", f"{tmp_path}/ca.crt is missing") and len(problems) == 4
