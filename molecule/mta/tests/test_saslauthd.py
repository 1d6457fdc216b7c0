"""The saslauthd role on the hub, converged with the mta role as site.yml does, and the contract
between them: saslauthd publishes its socket group and Exim's own user joins it.

saslauthd asks the estate's directory (on mta-peer-a, converged as site.yml does); the accounts
come from the rendered estate (hermes_directory), the passwords from the scenario's throwaway
vault values. Every refusal is paired with an acceptance in the same
test, so a daemon that is not answering cannot make a negative test pass.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import testinfra.utils.ansible_runner
import yaml

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
MOLECULE = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
RENDERED = testinfra.utils.ansible_runner.AnsibleRunner(str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "rendered"))
HUB = "mta-hub"
testinfra_hosts = [f"podman://{HUB}"]
PUBLISHED: dict[str, str] = yaml.safe_load((PROJECT / "roles" / "saslauthd" / "vars" / "main" / "published.yml").read_text())
SOCKET, GROUP = PUBLISHED["saslauthd_socket"], PUBLISHED["saslauthd_socket_group"]
SOCKET_DIRECTORY = str(Path(SOCKET).parent)


def _facts() -> dict[str, Any]:
    return dict(RENDERED.get_variables(HUB)["hermes_saslauthd"])


def _accounts() -> list[str]:
    directory = RENDERED.get_hosts("directory")[0]
    return list(RENDERED.get_variables(directory)["hermes_directory"]["accounts"])


def _passwords() -> dict[str, str]:
    return dict(MOLECULE.get_variables(HUB)["vault_hermes_user_passwords"])


def _unit(host: Any, unit: str) -> dict[str, str]:
    out = host.check_output(f"systemctl show --property=ActiveState,FragmentPath,MainPID,UnitFileState {unit}")
    return dict(line.split("=", 1) for line in out.splitlines())


def _journal(host: Any) -> str:
    return str(host.run("journalctl --no-pager --lines=30 --unit=saslauthd").stdout)


def _check(host: Any, user: str, password: str, as_user: str = "root") -> Any:
    command = f"testsaslauthd -u {shlex.quote(user)} -p {shlex.quote(password)}"
    if as_user != "root":
        command = f"runuser -u {as_user} -- {command}"
    return host.run(command)


def test_native_unit_runs_the_estates_backend(host: Any) -> None:
    unit = _unit(host, "saslauthd.service")
    assert unit["ActiveState"] == "active", _journal(host)
    assert unit["UnitFileState"] == "enabled"
    assert unit["FragmentPath"] == "/etc/systemd/system/saslauthd.service"
    assert RENDERED.get_variables(HUB)["ansible_managed"] in host.file(unit["FragmentPath"]).content_string
    command = host.check_output(f"ps -o args= -p {unit['MainPID']}")
    assert f"-a ldap -m {SOCKET_DIRECTORY}" in command


def test_restart_replaces_the_daemon(host: Any) -> None:
    before = _unit(host, "saslauthd.service")["MainPID"]
    host.check_output("systemctl restart saslauthd.service")
    after = _unit(host, "saslauthd.service")["MainPID"]
    assert after not in ("0", before)
    assert host.run(f"kill -0 {before}").rc != 0, "the old daemon survived the restart"
    assert host.check_output("pgrep --count --exact saslauthd --parent 1") == "1"


def test_socket_is_for_the_published_group_only(host: Any) -> None:
    directory = host.file(SOCKET_DIRECTORY)
    assert directory.user == "root" and directory.group == GROUP and directory.mode == 0o710
    assert host.file(SOCKET).is_socket


def test_every_account_authenticates_and_nothing_else(host: Any) -> None:
    passwords = _passwords()
    accounts = _accounts()
    assert accounts
    for user in accounts:
        result = _check(host, user, passwords[user])
        assert result.rc == 0 and 'OK "Success."' in result.stdout, (user, result.stdout, _journal(host))
    # A password the vault holds for a name that is no account opens nothing.
    strangers = sorted(set(passwords) - set(accounts))
    assert strangers, "the scenario's vault must hold a password for a non-account"
    for user in strangers:
        result = _check(host, user, passwords[user])
        assert result.rc != 0 and "authentication failed" in result.stdout, (user, result.stdout)


def test_wrong_password_is_refused(host: Any) -> None:
    passwords = _passwords()
    alice = passwords["alice"]
    # Positive control in the same run: the daemon answers and accepts the right password.
    assert _check(host, "alice", alice).rc == 0
    for password in (alice + "x", alice.upper(), "", passwords["bob"]):
        result = _check(host, "alice", password)
        assert result.rc != 0 and "authentication failed" in result.stdout, (password, result.stdout)


def test_exim_joined_the_published_group_and_reaches_the_socket(host: Any) -> None:
    """The contract: the mta role put its own user in the group saslauthd published."""
    alice = _passwords()["alice"]
    assert GROUP in host.user("Debian-exim").groups
    result = _check(host, "alice", alice, as_user="Debian-exim")
    assert result.rc == 0 and "Success" in result.stdout, result.stdout + result.stderr
    # Control: a user outside the group cannot even connect.
    refused = _check(host, "alice", alice, as_user="nobody")
    assert refused.rc != 0 and "Success" not in refused.stdout, refused.stdout


def test_no_user_password_is_kept_on_the_hub(host: Any) -> None:
    passwords = _passwords()
    assert not host.file("/etc/sasldb2").exists
    for user in _accounts():
        found = host.run("grep -rlF -- %s /etc /var/lib /var/spool /run /root", passwords[user])
        assert found.rc == 1, f"{user}'s password is on the hub in {found.stdout}"
    # Control: the search finds what is there (the directory saslauthd asks).
    servers = _facts()["ldap_servers"]
    assert host.run("grep -rlF -- %s /etc", servers[0]).stdout.split() == ["/etc/saslauthd.conf"]
