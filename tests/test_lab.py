"""The lab for real: containers up (twice), reachable, deployed, and gone after down.

The estate is kept outside the checkout, as a user keeps theirs (<dir>/estates/labtest.yml):
it renders to <dir>/rendered/labtest/ by the documented rule and deploys from there.

Needs root, podman and the base image (scripts/test.sh provides them); marked `lab`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hermes.cli import app
from hermes.lab import internet
from hermes.lab.containers import LABEL
from hermes.lab.image import podman_env
from hermes.paths import LAB_STATE

pytestmark = pytest.mark.lab
SOURCE = Path(__file__).parent / "data" / "labtest.yml"
HOSTS = {"lt-hub", "lt-store-a", "lt-store-b", "lt-backup"}
runner = CliRunner()


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """labtest.yml and its accounts in an estate repository of their own, outside the checkout."""
    home = tmp_path_factory.mktemp("estate repository")
    (home / "estates").mkdir()
    for source in (SOURCE, SOURCE.with_suffix(".accounts")):
        shutil.copy(source, home / "estates" / source.name)
    return home / "estates" / SOURCE.name


def hermesctl(estate: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--estate", str(estate)])
    assert result.exit_code == 0, result.output
    return result.output


def _changed(deploy_output: str) -> int:
    """The count in deploy's summary line: "<playbook> on <estate>: successful, <n> changed; ..."."""
    match = re.search(r": successful, (\d+) changed;", deploy_output)
    assert match, deploy_output
    return int(match.group(1))


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def rendered(estate: Path) -> Iterator[Path]:
    """The estate rendered where the rule puts it (<home>/rendered/<name>), and its lab up."""
    assert "rendered/labtest: " in hermesctl(estate, "render")
    hermesctl(estate, "lab", "up")
    yield estate.parent.parent / "rendered" / "labtest"
    hermesctl(estate, "lab", "down")


def test_up_twice_changes_nothing(estate: Path, rendered: Path) -> None:
    assert "4 hosts up, 0 changes" in hermesctl(estate, "lab", "up")


def test_status_shows_every_host_running(estate: Path, rendered: Path) -> None:
    output = hermesctl(estate, "lab", "status")
    hosts = HOSTS | {internet.CLIENT[0], internet.MX[0]}
    for host in hosts:
        assert host in output
    assert output.count("running") == 2 * len(hosts)


def _address(host: str) -> str:
    """The host's address on the one network podman gave it."""
    (network,) = json.loads(podman("inspect", host))[0]["NetworkSettings"]["Networks"].values()
    return str(network["IPAddress"])


def test_containers_have_the_estates_addresses(estate: Path, rendered: Path) -> None:
    estate_file = yaml.safe_load(estate.read_text())
    network_of = {h["name"]: h["network"] for h in estate_file["hosts"]}
    assert len(set(network_of.values())) == 2, "labtest spans two networks"
    for host in HOSTS:
        (network,) = json.loads(podman("inspect", host))[0]["NetworkSettings"]["Networks"]
        assert network == f"hermes-labtest-{network_of[host]}"
        expected = (rendered / "host_vars" / f"{host}.yml").read_text()
        assert f"hermes_address: {_address(host)}\n" in expected


def _seen_as(client: str, server: str) -> str:
    """The address ``server`` sees a TCP connection from ``client`` come from."""
    listener = "import socket; s = socket.create_server(('', 7999)); c, a = s.accept(); print(a[0])"
    with subprocess.Popen(
        ["podman", "exec", server, "python3", "-c", listener], env=podman_env(), stdout=subprocess.PIPE, text=True
    ) as served:
        # Until the listener is up.
        connect = (
            "import socket, time\n"
            "for _ in range(50):\n"
            f" try: socket.create_connection(('{_address(server)}', 7999), 5); break\n"
            " except OSError: time.sleep(0.1)"
        )
        podman("exec", client, "python3", "-c", connect)
        seen, _ = served.communicate(timeout=30)
    return seen.strip()


def test_networks_are_routed_without_translation(estate: Path, rendered: Path) -> None:
    # Across the estate's two networks, and from the Internet side, each host is seen by its
    # own address (a store's LMTP and sync admit their peers by address)...
    assert _seen_as("lt-hub", "lt-store-b") == _address("lt-hub")
    assert _seen_as("lt-store-b", "lt-hub") == _address("lt-store-b")
    assert _seen_as(internet.CLIENT[0], "lt-hub") == internet.CLIENT[1]
    # ...and the routes are this estate's own rules, which `lab down` removes.
    rules = subprocess.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True, text=True, check=True).stdout
    assert len([r for r in rules.splitlines() if '"hermes-lab labtest"' in r]) == 6  # 2 networks + the Internet, each way


def test_deploy_from_outside_the_checkout_is_idempotent(estate: Path, rendered: Path) -> None:
    # hermesctl() has checked both runs succeeded (a failed run exits 4); what is left to
    # prove is that the first run changed the fresh hosts and the second changed nothing,
    # and that the run's record went to the estate's own home.
    first = hermesctl(estate, "deploy", "--lab", "--playbook", "common.yml")
    assert _changed(first) > 0, first
    second = hermesctl(estate, "deploy", "--lab", "--playbook", "common.yml")
    assert _changed(second) == 0, second
    assert list((estate.parent.parent / ".hermes" / "labtest" / "runs" / "common" / "artifacts").iterdir())
    hosts = podman("exec", "lt-hub", "getent", "hosts", "lt-store-b.labtest.test")
    assert hosts.split()[0] == _address("lt-store-b")


def test_deploy_checks_each_hosts_key(estate: Path, rendered: Path) -> None:
    # Every container made its own host key at first boot: none is baked into the image.
    known_hosts = LAB_STATE / "labtest" / "ssh" / "known_hosts"
    lines = {line.split()[0]: line.split()[2] for line in known_hosts.read_text().splitlines()}
    assert {name.split(",")[0] for name in lines} == HOSTS and len(set(lines.values())) == len(HOSTS)
    # A host whose key is not the one known (here: the hub answering with store-a's) is refused...
    hub, store = sorted(name for name in lines if name.startswith(("lt-hub,", "lt-store-a,")))
    known_hosts.write_text(f"{hub} ssh-ed25519 {lines[store]}\n")
    refused = runner.invoke(app, ["deploy", "--lab", "--playbook", "common.yml", "--limit", "lt-hub", "--estate", str(estate)])
    assert refused.exit_code == 4 and "mismatching host key" in refused.output, refused.output
    # ...and `lab up` writes the keys the hosts really have, so the same deploy goes ahead.
    hermesctl(estate, "lab", "up")
    assert _changed(hermesctl(estate, "deploy", "--lab", "--playbook", "common.yml", "--limit", "lt-hub")) == 0


def test_a_tagged_deploy_still_prechecks_every_host(estate: Path, rendered: Path) -> None:
    # Only the base's configuration is asked for; the precheck runs anyway, on every host, and
    # nothing untagged does (the base's package installs are tagged common_install).
    hermesctl(estate, "deploy", "--lab", "--tags", "common_configure")
    runs = estate.parent.parent / ".hermes" / "labtest" / "runs" / "site" / "artifacts"
    record = max(runs.iterdir(), key=lambda path: path.stat().st_mtime)
    events = [json.loads(path.read_text()) for path in (record / "job_events").glob("*.json")]
    ran = {
        (e["event_data"]["play"], e["event_data"]["task"], e["event_data"]["host"])
        for e in events
        if e["event"] == "runner_on_ok"
    }
    prechecked = {host for play, task, host in ran if task == "Check the operating system release"}
    assert prechecked == HOSTS
    assert any(task == "Write /etc/hosts" for _, task, _ in ran)
    assert not any(task == "Install the base packages" for _, task, _ in ran)


def test_down_leaves_nothing_behind(estate: Path, rendered: Path) -> None:
    hermesctl(estate, "lab", "down")
    assert podman("ps", "--all", f"--filter=label={LABEL}=labtest", "--format={{.Names}}").strip() == ""
    assert not [n for n in podman("network", "ls", "--format={{.Name}}").split() if n.startswith("hermes-labtest")]
    rules = subprocess.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True, text=True, check=True).stdout
    assert '"hermes-lab labtest"' not in rules
    # The Internet side goes with the last estate's lab, and stays while another is up.
    others = podman("ps", "--all", f"--filter=label={LABEL}", "--format={{.Names}}").split()
    internet_hosts = set(podman("ps", "--all", "--filter=label=org.hermes.lab=internet", "--format={{.Names}}").split())
    assert internet_hosts == ({internet.CLIENT[0], internet.MX[0]} if others else set())
    assert "0 removed" in hermesctl(estate, "lab", "down")
