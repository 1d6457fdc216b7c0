"""Prechecks: what the controller can tell is wrong with a deployment before any host is touched.

``hermesctl deploy`` runs them once the render is found current and the target is known; if any
finds a problem, nothing runs (:class:`hermes.errors.PrecheckError`, exit 4).

* The vault opens with the password given and defines every ``vault_hermes_<name>`` that the
  rendered ``group_vars/all/secrets.yml`` refers to (:data:`hermes.render.inventory.SECRETS`),
  each a non-empty string (the keys in :data:`SHORTEST` at least that long); the Cyrus
  passwords are mappings with an entry for each pair and backup server
  (:func:`hermes.credentials.vault_keys`); ``vault_hermes_user_passwords`` is a mapping of
  username to initial password. An account it gives no password (none, or an empty one) is a
  warning, not a problem: such an account cannot log in until one is set
  (``docs/directory.md``). A password that is not a string is a problem.
* Every host's certificate and key are there; the certificate is signed by the CA, valid now,
  holds the key's public key and names everything the host answers to, by the rule the lab's
  certificates are issued by (:func:`hermes.lab.pki.host_names`). A certificate (or the CA)
  expiring within 30 days is a warning, not a problem.

The checks are pure functions of what was read (:func:`secret_findings`,
:func:`keyed_findings`, :func:`password_findings`, :func:`certificate_findings`, :func:`validity_findings`);
:func:`precheck` reads the files. No message holds a secret's value.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from hermes.credentials import vault_keys
from hermes.deploy import LabTarget, PromptedPassword, Target
from hermes.errors import Problem, VaultError
from hermes.lab.pki import HostNames, certificate_names, host_names
from hermes.lab.vault import file_secret, read_lab_vault, read_vault, typed_secret
from hermes.loader import LoadedEstate
from hermes.render.inventory import SECRETS

# Close enough to its end that a certificate should be renewed now; it still deploys.
EXPIRY_WARNING = timedelta(days=30)
# The accounts a finding about their passwords names, of however many there are.
NAMED_ACCOUNTS = 5
# Keys a role refuses when shorter (roles/mta, roles/directory preflight), told here first: the
# role's refusal of a secret is no_log, so it cannot say which.
SHORTEST = {"srs_secret": 16, "directory_replication_password": 16}

_T = TypeVar("_T")


@dataclass(frozen=True)
class Findings:
    """What the prechecks found: problems stop the deployment, warnings do not."""

    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    def __add__(self, other: Findings) -> Findings:
        return Findings(self.problems + other.problems, self.warnings + other.warnings)


# The vault.


def _empty(value: Any) -> bool:
    """Whether ``value`` is no value: YAML's null, or an empty string."""
    return value is None or value == ""


def _unusable(value: Any, shortest: int = 1) -> str | None:
    """Why ``value`` cannot be a password, if it cannot (a YAML number or boolean would reach the
    roles changed: 0123 is 83)."""
    if _empty(value):
        return "empty"
    if not isinstance(value, str):
        return "not a string (quote it in the vault)"
    if len(value) < shortest:
        return f"shorter than {shortest} characters"
    return None


def _counted(users: Sequence[str], accounts: Collection[str]) -> str:
    """``2 of 12 accounts: user03, user07``: how many, and the first names only."""
    named = ", ".join(users[:NAMED_ACCOUNTS])
    more = f" and {len(users) - NAMED_ACCOUNTS} more" if len(users) > NAMED_ACCOUNTS else ""
    return f"{len(users)} of {len(accounts)} accounts: {named}{more}"


def password_findings(passwords: Any, accounts: Collection[str], vault: Path) -> Findings:
    """``vault_hermes_user_passwords``, which must be a mapping of username to initial password.
    An account it gives none (absent, null or empty) is a warning: the account cannot log in
    until one is set (docs/directory.md). A password that is not a string is a problem: YAML
    read a number or a boolean, which would reach the directory changed. Names that are not
    accounts are ignored."""
    variable = "vault_hermes_user_passwords"
    if not isinstance(passwords, Mapping):
        return Findings((Problem(variable, f"not a mapping of username to password in {vault}"),))
    given = {user: passwords.get(user) for user in accounts}
    without = [user for user, value in given.items() if _empty(value)]
    untyped = [user for user, value in given.items() if not _empty(value) and not isinstance(value, str)]
    findings = Findings()
    if untyped:
        reason = f"not a string for {_counted(untyped, accounts)} (quote it in the vault)"
        findings += Findings(problems=(Problem(variable, reason),))
    if without:
        reason = f"no password for {_counted(without, accounts)}; they cannot log in until one is set (docs/directory.md)"
        findings += Findings(warnings=(Problem(variable, reason),))
    return findings


def keyed_findings(variable: str, value: Any, keys: Collection[str], vault: Path) -> Findings:
    """A keyed secret (``vault_hermes_cyrus_admin_passwords``: pair or backup server -> password,
    hermes.credentials): every key the estate needs must have a usable password."""
    if not isinstance(value, Mapping):
        return Findings((Problem(variable, f"not a mapping of store pair or host to password in {vault}"),))
    return Findings(
        tuple(
            Problem(f"{variable}.{key}", f"{reason} in {vault}")
            for key in keys
            if (reason := "missing" if key not in value else _unusable(value[key]))
        )
    )


def secret_findings(
    variables: Mapping[str, Any], accounts: Collection[str], keyed: Mapping[str, Collection[str]], vault: Path
) -> Findings:
    """What is wrong with the vault's ``variables``: each ``vault_hermes_<name>`` missing or
    unusable is a problem; the keyed ones (``keyed``: name -> the keys the estate needs) are
    :func:`keyed_findings`, the accounts' passwords :func:`password_findings`."""
    findings = Findings()
    for name in SECRETS:
        variable = f"vault_hermes_{name}"
        if variable not in variables:
            findings += Findings((Problem(variable, f"missing from {vault}"),))
        elif name == "user_passwords":
            findings += password_findings(variables[variable], accounts, vault)
        elif name in keyed:
            findings += keyed_findings(variable, variables[variable], keyed[name], vault)
        elif reason := _unusable(variables[variable], SHORTEST.get(name, 1)):
            findings += Findings((Problem(variable, f"{reason} in {vault}"),))
    return findings


def read_target_vault(target: Target) -> dict[str, Any]:
    """The variables of the target's vault, opened with its password (``hermesctl plan`` masks
    their values); VaultError if it does not open."""
    if isinstance(target, LabTarget):
        return read_lab_vault(target.vault, target.vault_password_file)
    password = target.vault_password
    secret = typed_secret(password.text) if isinstance(password, PromptedPassword) else file_secret(password)
    return read_vault(target.vault, secret)


def vault_findings(loaded: LoadedEstate, target: Target) -> Findings:
    try:
        variables = read_target_vault(target)
    except VaultError as error:
        return Findings((Problem("", str(error)),))
    return secret_findings(variables, loaded.accounts.keys(), vault_keys(loaded.estate), target.vault)


# The certificates.


@dataclass(frozen=True)
class HostTls:
    """A host's certificate and key, as read from the certificate directory."""

    host: str
    certificate_file: Path
    certificate: x509.Certificate
    key_file: Path
    key: PrivateKeyTypes


@dataclass(frozen=True)
class Ca:
    file: Path
    certificate: x509.Certificate


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def validity_findings(where: str, label: str, certificate: x509.Certificate, now: datetime) -> Findings:
    """A certificate not yet valid or expired is a problem; one expiring soon, a warning."""
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now < start:
        return Findings(problems=(Problem(where, f"{label} is not valid before {_when(start)}"),))
    if now > end:
        return Findings(problems=(Problem(where, f"{label} expired on {_when(end)}"),))
    if end - now < EXPIRY_WARNING:
        return Findings(warnings=(Problem(where, f"{label} expires on {_when(end)}, in {(end - now).days} days"),))
    return Findings()


def _covers(held: Collection[str], name: str) -> bool:
    """Whether a certificate naming ``held`` is good for ``name``: it names it, or a wildcard
    stands for its first label (RFC 6125; a short name has no wildcard)."""
    names = {n.lower() for n in held}
    _, dot, parent = name.lower().partition(".")
    return name.lower() in names or (bool(dot) and f"*.{parent}" in names)


def missing_names(wanted: HostNames, held: HostNames) -> list[str]:
    """What ``wanted`` has that a certificate naming ``held`` does not cover, in ``wanted``'s order."""
    missing = [name for name in wanted.dns if not _covers(held.dns, name)]
    return missing + [str(address) for address in wanted.addresses if address not in held.addresses]


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate_findings(tls: HostTls, names: HostNames, ca: Ca | None, now: datetime) -> Findings:
    """A host's certificate against its key, the CA (None: the CA is unreadable, already a
    problem), the names it must answer to, and the time ``now``."""
    label = f"certificate {tls.certificate_file}"
    problems = []
    if ca is not None:
        try:
            tls.certificate.verify_directly_issued_by(ca.certificate)
        except (ValueError, TypeError, InvalidSignature):
            issuer = tls.certificate.issuer.rfc4514_string()
            problems.append(Problem(tls.host, f"{label} is not signed by the CA {ca.file} (its issuer: {issuer})"))
    if _public(tls.key.public_key()) != _public(tls.certificate.public_key()):
        problems.append(Problem(tls.host, f"key {tls.key_file} does not match {label}"))
    if missing := missing_names(names, certificate_names(tls.certificate)):
        problems.append(Problem(tls.host, f"{label} does not name {', '.join(missing)}"))
    return Findings(tuple(problems)) + validity_findings(tls.host, label, tls.certificate, now)


def _read(path: Path, parse: Callable[[bytes], _T], kind: str) -> _T | str:
    """The file, parsed; or why it cannot be."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return f"{path} is missing"
    except OSError as error:
        return f"{path} cannot be read: {error.strerror}"
    try:
        return parse(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return f"{path} is not {kind}"


def _key(data: bytes) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(data, password=None)


def certificates_findings(loaded: LoadedEstate, directory: Path, now: datetime) -> Findings:
    """Every host's certificate and key in ``directory`` (``ca.crt``, ``hosts/<host>.crt``, ``.key``)."""
    ca_file = directory / "ca.crt"
    ca = _read(ca_file, x509.load_pem_x509_certificate, "a PEM certificate")
    if isinstance(ca, str):
        findings, known = Findings((Problem("CA", ca),)), None
    else:
        findings, known = validity_findings("CA", f"CA {ca_file}", ca, now), Ca(ca_file, ca)
    for host in loaded.estate.hosts:
        files = directory / "hosts" / f"{host.name}.crt", directory / "hosts" / f"{host.name}.key"
        certificate = _read(files[0], x509.load_pem_x509_certificate, "a PEM certificate")
        key = _read(files[1], _key, "an unencrypted PEM private key")
        if isinstance(certificate, str) or isinstance(key, str):
            unread = (reason for reason in (certificate, key) if isinstance(reason, str))
            findings += Findings(tuple(Problem(host.name, reason) for reason in unread))
            continue
        tls = HostTls(host.name, files[0], certificate, files[1], key)
        findings += certificate_findings(tls, host_names(loaded, host.name), known, now)
    return findings


def precheck(loaded: LoadedEstate, target: Target, certificates: Path, now: datetime | None = None) -> Findings:
    """Both prechecks of deploying ``loaded`` to ``target`` with the certificate directory ``certificates``."""
    return vault_findings(loaded, target) + certificates_findings(loaded, certificates, now or datetime.now(UTC))


def passed(loaded: LoadedEstate) -> str:
    """The line saying what was checked, when nothing was wrong."""
    return (
        f"prechecks: vault ({len(SECRETS)} secrets, passwords of {len(loaded.accounts)} accounts), "
        f"certificates ({len(loaded.estate.hosts)} hosts) ok"
    )
