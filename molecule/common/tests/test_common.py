"""Behaviour of the common role on every host of the scenario's estate.

Expected values come from the rendered estate and the scenario's inventory (molecule.yml),
read through Ansible, so the tests and the scenario cannot drift apart. One test per behaviour.

Commands go straight through testinfra's podman backend: its ansible backend would run
every command as an Ansible task (over a second each instead of ~0.15 s).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import testinfra
import testinfra.utils.ansible_runner

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
PKI = EPHEMERAL / "pki"
LAB_PKI = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".lab" / "pki"

# The platforms and the scenario's variables; the rendered estate (what a deploy is given).
MOLECULE = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
RENDERED = testinfra.utils.ansible_runner.AnsibleRunner(str(EPHEMERAL / "rendered"))
HOSTS = MOLECULE.get_hosts("all")
testinfra_hosts = [f"podman://{name}" for name in HOSTS]


def _name(host: Any) -> str:
    return str(host.backend.name)


def _vars(host: Any) -> dict[str, Any]:
    return {**MOLECULE.get_variables(_name(host)), **RENDERED.get_variables(_name(host))}


def _in_container(host: Any) -> bool:
    return bool(host.run("systemd-detect-virt --container").rc == 0)


def _unit(host: Any, unit: str) -> dict[str, str]:
    out = host.check_output(f"systemctl show --property=ActiveState,UnitFileState,ConditionResult {unit}")
    return dict(line.split("=", 1) for line in out.splitlines())


def _journal(host: Any, unit: str) -> str:
    return str(host.run(f"journalctl --no-pager --lines=30 --unit={unit}").stdout)


def _other_hosts(host: Any) -> list[str]:
    return [name for name in HOSTS if name != _name(host)]


def _address(name: str) -> str:
    other = testinfra.get_host(f"podman://{name}")
    out = other.check_output("ip -4 -o addr show scope global")
    return str(out.split()[3].split("/")[0])


def _gateway(host: Any) -> str:
    return str(host.check_output("ip -4 route show default").split()[2])


def test_hostname(host: Any) -> None:
    v = _vars(host)
    name = _name(host)
    fqdn = f"{name}.{v['hermes_common']['domain']}"
    assert host.check_output("hostname") == name
    assert host.file("/etc/hostname").content_string.strip() == name
    assert host.check_output("hostname --fqdn") == fqdn


def test_hosts_file_resolves_the_other_hosts(host: Any) -> None:
    v = _vars(host)
    hosts = host.file("/etc/hosts")
    assert v["ansible_managed"] in hosts.content_string
    others = _other_hosts(host)
    assert others, "the scenario needs at least two platforms"
    for name in others:
        # The FQDN is in no DNS: only the role's /etc/hosts can answer it.
        answer = host.check_output(f"getent ahostsv4 {name}.{v['hermes_common']['domain']}")
        assert answer.split()[0] == _address(name), answer


def test_resolver(host: Any) -> None:
    v = _vars(host)
    resolv = host.file("/etc/resolv.conf").content_string
    assert f"search {' '.join(v['common_search_domains'])}" in resolv
    nameservers = [line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver")]
    assert nameservers == [_gateway(host)]
    # Answered by the configured name server (podman's DNS), not by /etc/hosts.
    other = _other_hosts(host)[0]
    answer = host.run(f"getent ahostsv4 {other}.dns.podman")
    assert answer.rc == 0 and answer.stdout.split()[0] == _address(other), answer.stdout


def test_time_sync(host: Any) -> None:
    v = _vars(host)
    conf = host.file("/etc/systemd/timesyncd.conf.d/hermes-common.conf").content_string
    assert f"NTP={' '.join(v['common_ntp_servers'])}" in conf
    assert "FallbackNTP=\n" in conf + "\n"
    unit = _unit(host, "systemd-timesyncd.service")
    assert unit["UnitFileState"] == "enabled", unit
    if _in_container(host):
        # systemd itself declines to run it here (ConditionVirtualization=!container).
        assert unit["ConditionResult"] == "no", unit
        assert unit["ActiveState"] == "inactive", unit
    else:
        assert unit["ActiveState"] == "active", _journal(host, "systemd-timesyncd")


def test_journald(host: Any) -> None:
    v = _vars(host)
    conf = host.file("/etc/systemd/journald.conf.d/hermes-common.conf").content_string
    assert "Storage=persistent" in conf
    machine_id = host.file("/etc/machine-id").content_string.strip()
    assert host.file(f"/var/log/journal/{machine_id}").is_directory
    # journald reports the limit it applies when it opens the persistent journal.
    size = v["common_journald_system_max_use"]
    limit = f"max {size[:-1]}.0{size[-1]}"
    log = host.check_output("journalctl --no-pager --boot --unit=systemd-journald")
    assert f"System Journal (/var/log/journal/{machine_id})" in log
    assert limit in log.split("System Journal (/var/log/journal/")[-1], log


def test_syslog(host: Any) -> None:
    unit = _unit(host, "rsyslog.service")
    assert unit["ActiveState"] == "active", _journal(host, "rsyslog")
    marker = f"hermes-test-{uuid.uuid4()}"
    host.check_output(f"logger --priority mail.info {marker}")
    for _ in range(20):
        if marker in host.file("/var/log/mail.log").content_string:
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"{marker} never reached /var/log/mail.log\n{_journal(host, 'rsyslog')}")


def test_ca_trusted(host: Any) -> None:
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    # The lab CA (the deploy target's) signed every host's certificate.
    trusted = (LAB_PKI / "hosts" / f"{_name(host)}.crt").read_text()
    untrusted = (PKI / "leaf-untrusted-ca.pem").read_text()
    assert host.file("/usr/local/share/ca-certificates/hermes/ca.crt").exists
    ok = host.run(f"printf '%s' '{trusted}' | openssl verify -CAfile {bundle}")
    assert ok.rc == 0 and ": OK" in ok.stdout, ok.stdout + ok.stderr
    # Positive control: the same check refuses a leaf of a CA the host was not given.
    refused = host.run(f"printf '%s' '{untrusted}' | openssl verify -CAfile {bundle}")
    assert refused.rc != 0, refused.stdout


def test_apt_settings(host: Any) -> None:
    dump = host.check_output("apt-config dump")
    for setting in (
        'APT::Install-Recommends "false";',
        'APT::Install-Suggests "false";',
        'APT::Keep-Downloaded-Packages "true";',
        'APT::Periodic::Update-Package-Lists "1";',
        'APT::Periodic::AutocleanInterval "7";',
    ):
        assert setting in dump
    # Kept after installing: the shared archive cache holds what the role installed.
    assert host.run("ls /var/cache/apt/archives/rsyslog_*.deb").rc == 0


def test_unneeded_packages_removed(host: Any) -> None:
    for package in _vars(host)["common_packages_absent"]:
        assert not host.package(package).is_installed, package


def test_kernel_settings(host: Any) -> None:
    conf = host.file("/etc/sysctl.d/60-hermes-common.conf").content_string
    assert "fs.suid_dumpable = 0" in conf
    assert "kernel.dmesg_restrict = 1" in conf
    if _in_container(host):
        # /proc/sys is read-only: systemd-sysctl is skipped (ConditionPathIsReadWrite).
        assert _unit(host, "systemd-sysctl.service")["ConditionResult"] == "no"
    else:
        assert host.sysctl("fs.suid_dumpable") == 0
        assert host.sysctl("kernel.dmesg_restrict") == 1


def test_login_umask(host: Any) -> None:
    umask = _vars(host)["common_umask"]
    out = host.check_output("su --login nobody --shell /bin/sh --command umask")
    assert out.strip() == umask.rjust(4, "0")


def test_core_dumps_disabled(host: Any) -> None:
    assert host.check_output("systemctl show --property=DefaultLimitCORE") == "DefaultLimitCORE=0"
    out = host.check_output("su --login nobody --shell /bin/sh --command 'ulimit -H -c'")
    assert out.strip() == "0"


def test_su_restricted(host: Any) -> None:
    group = _vars(host)["common_su_group"]
    pam = host.file("/etc/pam.d/su").content_string.splitlines()
    assert f"auth       required   pam_wheel.so group={group}" in pam
    # After pam_rootok (root keeps su) and before the password stack.
    assert (
        pam.index("auth       sufficient pam_rootok.so")
        < pam.index(f"auth       required   pam_wheel.so group={group}")
        < pam.index("@include common-auth")
    )


def test_cron_restricted(host: Any) -> None:
    allowed = host.file("/etc/cron.allow")
    assert allowed.group == "crontab" and allowed.mode == 0o640
    refused = host.run("su --shell /bin/sh --command 'crontab -l' nobody")
    assert "not allowed" in refused.stderr, refused.stderr
    # Positive control: root is listed, so crontab gets past the allow check.
    permitted = host.run("crontab -l")
    assert "not allowed" not in permitted.stderr, permitted.stderr


def _connect(source: Any, address: str, port: int) -> str:
    """What a connection from ``source`` to address:port gets: the server's first words, or
    "refused" (a firewall's reset, or nothing listening)."""
    code = (
        "import socket, sys\n"
        "try:\n"
        "    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
        "except ConnectionRefusedError:\n"
        "    print('refused')\n"
        "else:\n"
        "    print(s.recv(100).decode(errors='replace').strip() or 'closed')\n"
    )
    return str(source.check_output(f"python3 -c {shlex.quote(code)} {address} {port}")).strip()


def _admitted(rule: dict[str, Any], address: str) -> bool:
    return bool(rule["anywhere"]) or any(ipaddress.ip_address(address) in ipaddress.ip_network(s) for s in rule["ipv4"])


def test_the_firewall_admits_each_port_from_its_sources_only(host: Any) -> None:
    """SSH answers the controller (the management network) and no other host; a port open to
    some of the scenario's hosts (with a listener started for the test) answers those only."""
    name = _name(host)
    rules = {rule["port"]: rule for rule in _vars(host)["hermes_firewall"]["inbound"] if rule["protocol"] == "tcp"}
    address, controller = _address(name), _gateway(host)
    local = testinfra.get_host("local://")
    others = {other: _address(other) for other in _other_hosts(host)}
    assert _admitted(rules[22], controller) and _connect(local, address, 22).startswith("SSH-2.0-")
    for other, other_address in others.items():
        assert not _admitted(rules[22], other_address)
        assert _connect(testinfra.get_host(f"podman://{other}"), address, 22) == "refused", other
    # A port open to some hosts only (another of the scenario's where there is one): nothing of
    # the common role listens there, so a listener stands in for the service. It answers the
    # host itself, so a refusal is the firewall's.
    restricted = [(p, r) for p, r in sorted(rules.items()) if p != 22 and not r["anywhere"]]
    port, rule = max(restricted, key=lambda item: any(_admitted(item[1], a) for a in others.values()))
    admitted = sorted(o for o, a in others.items() if _admitted(rule, a))
    refused = sorted(o for o, a in others.items() if not _admitted(rule, a))
    assert refused, (port, rule)
    listener = f"python3 -c {shlex.quote(LISTENER)} {port}"
    host.run(f"systemd-run --unit=firewall-probe-{port} --collect {listener}")
    try:
        time.sleep(1)
        assert _connect(host, address, port) == "hello"
        for other in admitted:
            assert _connect(testinfra.get_host(f"podman://{other}"), address, port) == "hello", (other, port)
        for other in refused:
            assert _connect(testinfra.get_host(f"podman://{other}"), address, port) == "refused", (other, port)
    finally:
        host.run(f"systemctl stop firewall-probe-{port}")


# Greets every connection with "hello" on the port it is given.
LISTENER = """\
import socket, sys
server = socket.create_server(("", int(sys.argv[1])))
while True:
    connection, _ = server.accept()
    connection.sendall(b"hello\\n")
    connection.close()
"""


# The precheck (roles/precheck), run by side_effect.yml on cm-store-a -------------------------------


def test_precheck_refuses_each_unfit_host_and_accepts_a_fit_one() -> None:
    outcomes = json.loads((EPHEMERAL / "precheck-cases.json").read_text())
    store = testinfra.get_host("podman://cm-store-a")
    # The fit case passed every check, the resolver's included, so each refusal below is its own.
    assert outcomes.pop("fit") == ""
    assert "TCP port 22 is held by ssh.service, not by exim4.service" in outcomes.pop("a port held by another program")
    release = outcomes.pop("another release")
    assert f"runs Debian {store.system_info.release}" in release and "written for Debian 11" in release
    assert "Nothing is mounted at /srv/no-volume" in outcomes.pop("no data volume")
    sources = store.check_output("grep -rhsE '^[[:space:]]*(deb|URIs:)[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d")
    mirrors = {name for url in re.findall(r"[a-z0-9+]+://\S+", sources) if (name := urlsplit(url).hostname)}
    unresolved = outcomes.pop("a resolver that does not answer")
    assert mirrors and all(mirror in unresolved for mirror in mirrors), unresolved
    # The fit case's management networks hold the controller (the gateway); this one does not.
    outsider = outcomes.pop("a deploy from outside the management networks")
    assert f"reaches the host from {_gateway(store)}, which no management network holds (203.0.113.0/24)" in outsider
    assert outcomes == {}
    # Every case put the host back as it was: its resolver answers again.
    assert all(store.run(f"getent ahosts {mirror}").rc == 0 for mirror in mirrors)
