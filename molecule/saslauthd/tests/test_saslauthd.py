"""Behaviour of the saslauthd role on one host.

Users and passwords come from the scenario's inventory (molecule.yml), read through
Ansible. Every refusal is paired with an acceptance in the same test, so a daemon that
is not answering cannot make a negative test pass.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
MANAGED = "Managed by hermes (Ansible); local edits will be overwritten"

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
HOSTS = RUNNER.get_hosts("all")
testinfra_hosts = [f"podman://{name}" for name in HOSTS]


def _vars(host: Any) -> dict[str, Any]:
    return RUNNER.get_variables(str(host.backend.name))


def _unit(host: Any, unit: str) -> dict[str, str]:
    out = host.check_output(f"systemctl show --property=ActiveState,FragmentPath,MainPID,UnitFileState {unit}")
    return dict(line.split("=", 1) for line in out.splitlines())


def _journal(host: Any) -> str:
    return host.run("journalctl --no-pager --lines=30 --unit=saslauthd").stdout


def _check(host: Any, user: str, password: str, as_user: str = "root") -> Any:
    command = f"testsaslauthd -u {shlex.quote(user)} -p {shlex.quote(password)}"
    if as_user != "root":
        command = f"runuser -u {as_user} -- {command}"
    return host.run(command)


def test_native_unit_runs_the_chosen_backend(host: Any) -> None:
    mechanism = _vars(host)["saslauthd_mechanism"]
    unit = _unit(host, "saslauthd.service")
    assert unit["ActiveState"] == "active", _journal(host)
    assert unit["UnitFileState"] == "enabled"
    assert unit["FragmentPath"] == "/etc/systemd/system/saslauthd.service"
    assert MANAGED in host.file(unit["FragmentPath"]).content_string
    command = host.check_output(f"ps -o args= -p {unit['MainPID']}")
    assert f"-a {mechanism} -m /run/saslauthd" in command


def test_restart_replaces_the_daemon(host: Any) -> None:
    before = _unit(host, "saslauthd.service")["MainPID"]
    host.check_output("systemctl restart saslauthd.service")
    after = _unit(host, "saslauthd.service")["MainPID"]
    assert after not in ("0", before)
    assert host.run(f"kill -0 {before}").rc != 0, "the old daemon survived the restart"
    assert host.check_output("pgrep --count --exact saslauthd --parent 1") == "1"


def test_socket_is_for_the_sasl_group_only(host: Any) -> None:
    directory = host.file("/run/saslauthd")
    assert directory.user == "root" and directory.group == "sasl" and directory.mode == 0o710
    assert host.file("/run/saslauthd/mux").is_socket


def test_right_password_authenticates(host: Any) -> None:
    for user, password in _vars(host)["saslauthd_users"].items():
        result = _check(host, user, password)
        assert result.rc == 0 and 'OK "Success."' in result.stdout, (user, result.stdout, _journal(host))


def test_wrong_password_is_refused(host: Any) -> None:
    users = _vars(host)["saslauthd_users"]
    alice = users["alice"]
    # Positive control in the same run: the daemon answers and accepts the right password.
    assert _check(host, "alice", alice).rc == 0
    for password in (alice + "x", alice.upper(), "", users["bob"]):
        result = _check(host, "alice", password)
        assert result.rc != 0 and "authentication failed" in result.stdout, (password, result.stdout)
    unknown = _check(host, "mallory", alice)
    assert unknown.rc != 0 and "authentication failed" in unknown.stdout


def test_group_members_reach_the_socket(host: Any) -> None:
    members = _vars(host)["saslauthd_socket_group_members"]
    alice = _vars(host)["saslauthd_users"]["alice"]
    for member in members:
        assert "sasl" in host.user(member).groups
        result = _check(host, "alice", alice, as_user=member)
        assert result.rc == 0 and "Success" in result.stdout, result.stdout + result.stderr
    # Control: a user outside the group cannot even connect.
    refused = _check(host, "alice", alice, as_user="nobody")
    assert refused.rc != 0 and "Success" not in refused.stdout, refused.stdout


def test_sasldb_is_private(host: Any) -> None:
    sasldb = host.file("/etc/sasldb2")
    assert sasldb.user == "root" and sasldb.group == "root" and sasldb.mode == 0o600
    listed = host.check_output("sasldblistusers2")
    for user in _vars(host)["saslauthd_users"]:
        assert f"{user}@" in listed
