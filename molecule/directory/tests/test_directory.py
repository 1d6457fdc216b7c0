"""The account directory and the password checker that asks it, after side_effect.yml's deploy.

Clients are real: ldap3 from the controller over LDAPS (the lab CA verifies the servers'
certificates), saslauthd on the hub through its socket (testsaslauthd), slapd's own tools on
the hosts. Expected values come from the rendered estate and the scenario's vault.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ldap3
import pytest
import testinfra
import testinfra.utils.ansible_runner
from ldap3.core.exceptions import LDAPException

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
CA = PROJECT / ".lab" / "pki" / "ca.crt"
MOLECULE = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
RENDERED = testinfra.utils.ansible_runner.AnsibleRunner(str(EPHEMERAL / "rendered"))
HUB, PROVIDER, REPLICA = "dir-hub", "dir-provider", "dir-replica"


def facts(name: str) -> dict[str, Any]:
    """A host's variables: the scenario's, then the rendered estate's (as Ansible ranks them)."""
    return {**MOLECULE.get_variables(name), **RENDERED.get_variables(name)}


VARS = facts(PROVIDER)
DIRECTORY: dict[str, Any] = VARS["hermes_directory"]
PASSWORDS: dict[str, str] = VARS["vault_hermes_user_passwords"]
REMOVED: str = VARS["scenario_removed_account"]
CHANGED: str = VARS["scenario_changed_account"]
NEW_PASSWORD: str = VARS["scenario_changed_password"]
# Every account still in the accounts file, with the password the vault now gives it.
CURRENT = {u: (NEW_PASSWORD if u == CHANGED else PASSWORDS[u]) for u in DIRECTORY["accounts"] if u != REMOVED}


def host(name: str) -> Any:
    return testinfra.get_host(f"podman://{name}")


def address(name: str) -> str:
    return str(facts(name)["hermes_address"])


def server(name: str) -> ldap3.Server:
    # The certificate names the host's FQDN; the controller reaches it by address.
    fqdn = facts(name)["hermes_fqdn"]
    tls = ldap3.Tls(ca_certs_file=str(CA), validate=ssl.CERT_REQUIRED, valid_names=[fqdn], sni=fqdn)
    return ldap3.Server(address(name), port=636, use_ssl=True, tls=tls, connect_timeout=5)


def user_dn(user: str) -> str:
    return f"uid={user},{DIRECTORY['people']}"


def ldap_bind(name: str, user: str, password: str) -> bool:
    """Whether a simple bind as the user's entry succeeds, over LDAPS to ``name``."""
    connection = ldap3.Connection(server(name), user=user_dn(user), password=password)
    try:
        return bool(connection.bind())
    finally:
        connection.unbind()


def saslauthd_accepts(user: str, password: str) -> bool:
    """What the hub's saslauthd says, as Exim and Cyrus would ask it."""
    return bool(host(HUB).run("testsaslauthd -u %s -p %s", user, password).rc == 0)


def refused(name: str, user: str, password: str) -> bool:
    return not ldap_bind(name, user, password)


def ldaps_listening(name: str) -> bool:
    sockets = host(name).socket
    return bool(sockets("tcp://0.0.0.0:636").is_listening or sockets("tcp://:::636").is_listening)


def eventually(check: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


@pytest.mark.parametrize("name", [PROVIDER, REPLICA])
def test_every_account_binds_with_its_password_and_no_other(name: str) -> None:
    for user, password in CURRENT.items():
        assert ldap_bind(name, user, password), f"{user} cannot bind to {name}"
        assert not ldap_bind(name, user, password + "x"), f"{user} binds to {name} with a wrong password"


def test_saslauthd_on_the_hub_checks_passwords_against_the_directory() -> None:
    for user, password in CURRENT.items():
        assert saslauthd_accepts(user, password), user
        assert not saslauthd_accepts(user, password[:-1]), user
    # A password in the vault for a name that is not an account opens nothing.
    assert not saslauthd_accepts("mallory", PASSWORDS["mallory"])


def test_a_removed_account_can_no_longer_log_in_anywhere() -> None:
    assert REMOVED not in CURRENT and REMOVED in DIRECTORY["accounts"]
    assert not saslauthd_accepts(REMOVED, PASSWORDS[REMOVED])
    for name in (PROVIDER, REPLICA):
        assert eventually(functools.partial(refused, name, REMOVED, PASSWORDS[REMOVED])), name
    # The others still can, on both.
    user = next(iter(CURRENT))
    assert all(ldap_bind(name, user, CURRENT[user]) for name in (PROVIDER, REPLICA))


def test_a_changed_password_replaces_the_old_one_at_once() -> None:
    assert saslauthd_accepts(CHANGED, NEW_PASSWORD)
    assert not saslauthd_accepts(CHANGED, PASSWORDS[CHANGED])
    assert eventually(lambda: ldap_bind(REPLICA, CHANGED, NEW_PASSWORD))
    assert not ldap_bind(REPLICA, CHANGED, PASSWORDS[CHANGED])


def stored_passwords() -> dict[str, bytes]:
    """uid -> userPassword, read as the tree's manager (root over ldapi) on the provider."""
    out = host(PROVIDER).check_output(
        "ldapsearch -LLL -o ldif-wrap=no -Q -Y EXTERNAL -H ldapi:/// -b %s %s uid userPassword",
        DIRECTORY["people"],
        "(uid=*)",
    )
    stored = {}
    for block in out.strip().split("\n\n"):
        attributes = dict(line.split(": ", 1) for line in block.splitlines())
        stored[attributes["uid"]] = base64.b64decode(attributes["userPassword:"])
    return stored


def test_passwords_are_stored_as_salted_hashes() -> None:
    stored = stored_passwords()
    assert set(stored) == set(CURRENT)
    for user, value in stored.items():
        assert value.startswith(b"{SSHA}"), user
        raw = base64.b64decode(value.removeprefix(b"{SSHA}"))
        digest, salt = raw[:20], raw[20:]
        # A hash of the vault's password, under a salt of its own.
        assert len(salt) >= 4, user
        assert hashlib.sha1(CURRENT[user].encode() + salt).digest() == digest, user  # noqa: S324
        assert hashlib.sha1(CURRENT[user].encode() + b"x" + salt).digest() != digest, user  # noqa: S324
    # Two accounts with the same password: the stored values still differ.
    assert CURRENT["carol"] == CURRENT["dave"]
    assert stored["carol"] != stored["dave"]


def test_nobody_reads_or_writes_without_authenticating() -> None:
    anonymous = ldap3.Connection(server(PROVIDER))
    anonymous.open()
    # Refused: an anonymous search, and an anonymous write.
    assert not anonymous.search(DIRECTORY["suffix"], "(uid=*)", attributes=["uid"]) or not anonymous.entries
    assert not anonymous.add(f"uid=intruder,{DIRECTORY['people']}", ["inetOrgPerson"], {"sn": "x", "cn": "x"})
    anonymous.unbind()
    # A user reads their own entry, but no one else's and no password.
    user = next(iter(CURRENT))
    other = next(u for u in CURRENT if u != user)
    connection = ldap3.Connection(server(PROVIDER), user=user_dn(user), password=CURRENT[user], auto_bind=True)
    assert connection.search(user_dn(user), "(objectClass=*)", attributes=["mail", "userPassword"])
    entry = connection.entries[0]
    assert str(entry.mail) == f"{user}@{DIRECTORY['mail_domain']}"
    assert not connection.response[0]["raw_attributes"].get("userPassword")
    assert not connection.search(user_dn(other), "(objectClass=*)", attributes=["mail"]) or not connection.entries
    assert not connection.modify(user_dn(user), {"mail": [(ldap3.MODIFY_REPLACE, ["x@example.org"])]})
    connection.unbind()


def test_only_ldaps_and_the_local_socket_listen() -> None:
    for name in (PROVIDER, REPLICA):
        sockets = host(name).socket
        assert ldaps_listening(name), name
        assert not sockets("tcp://0.0.0.0:389").is_listening and not sockets("tcp://:::389").is_listening, name
    with pytest.raises(LDAPException):
        ldap3.Connection(ldap3.Server(address(PROVIDER), port=389, connect_timeout=3), auto_bind=True)


def test_the_replica_refuses_writes_the_provider_takes() -> None:
    change = "dn: %s\nchangetype: modify\nreplace: mail\nmail: %s\n"
    user = next(iter(CURRENT))
    mail = f"{user}@{DIRECTORY['mail_domain']}"
    replica = host(REPLICA).run("printf %s | ldapmodify -Q -Y EXTERNAL -H ldapi:///", change % (user_dn(user), mail))
    assert replica.rc != 0
    # The same (unchanging) write as the provider's manager succeeds.
    provider = host(PROVIDER).run("printf %s | ldapmodify -Q -Y EXTERNAL -H ldapi:///", change % (user_dn(user), mail))
    assert provider.rc == 0, provider.stderr


def test_saslauthd_falls_back_to_the_replica() -> None:
    user, password = next(iter(CURRENT.items()))
    provider = host(PROVIDER)
    provider.check_output("systemctl stop slapd.service")
    try:
        assert saslauthd_accepts(user, password)
        assert not saslauthd_accepts(user, password + "x")
    finally:
        provider.check_output("systemctl start slapd.service")
    # slapd's init script can return before its listener is open.
    assert eventually(functools.partial(ldaps_listening, PROVIDER))
    assert ldap_bind(PROVIDER, user, password)


def test_no_password_is_kept_on_the_hub() -> None:
    hub = host(HUB)
    assert not hub.file("/etc/sasldb2").exists
    for password in CURRENT.values():
        found = hub.run("grep -rlF -- %s /etc /var/lib /run /srv /root /home", password)
        assert found.rc == 1, f"a password is on the hub in {found.stdout}"
    # The check can find one: the saslauthd configuration holds the directory's address.
    assert hub.run("grep -rlF -- %s /etc", DIRECTORY["people"]).rc == 0
