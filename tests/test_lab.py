"""The lab for real: containers up (twice), reachable, deployed with site.yml, and gone after down.

Needs root, podman and the base image (scripts/test.sh provides them); marked `lab`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hermes.cli import app
from hermes.lab.containers import LABEL
from hermes.lab.image import podman_env

pytestmark = pytest.mark.lab
ESTATE = Path(__file__).parent / "data" / "labtest.yml"
HOSTS = {"lt-hub", "lt-store-a", "lt-store-b"}
runner = CliRunner()


def hermesctl(*args: str) -> str:
    result = runner.invoke(app, [*args, "--estate", str(ESTATE)])
    assert result.exit_code == 0, result.output
    return result.output


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("labtest") / "inventory"
    hermesctl("render", "--output", str(out))
    hermesctl("lab", "up")
    yield out
    hermesctl("lab", "down")


def test_up_twice_changes_nothing(rendered: Path) -> None:
    assert "3 hosts up, 0 changes" in hermesctl("lab", "up")


def test_status_shows_every_host_running(rendered: Path) -> None:
    output = hermesctl("lab", "status")
    for host in HOSTS:
        assert host in output
    assert output.count("running") == 2 * len(HOSTS)


def test_containers_have_the_estates_addresses(rendered: Path) -> None:
    for host in HOSTS:
        info = json.loads(podman("inspect", host))[0]
        address = info["NetworkSettings"]["Networks"]["hermes-labtest"]["IPAddress"]
        expected = (rendered / "host_vars" / f"{host}.yml").read_text()
        assert f"hermes_address: {address}\n" in expected


def test_deploy_applies_common_and_is_idempotent(rendered: Path) -> None:
    first = hermesctl("deploy", "--lab", "--playbook", "common.yml", "--output", str(rendered))
    assert "successful" in first
    second = hermesctl("deploy", "--lab", "--playbook", "common.yml", "--output", str(rendered))
    assert "successful, 0 changed" in second
    hosts = podman("exec", "lt-hub", "getent", "hosts", "lt-store-b.labtest.test")
    assert (
        hosts.split()[0]
        == json.loads(podman("inspect", "lt-store-b"))[0]["NetworkSettings"]["Networks"]["hermes-labtest"]["IPAddress"]
    )


def test_down_leaves_nothing_behind(rendered: Path) -> None:
    hermesctl("lab", "down")
    assert podman("ps", "--all", f"--filter=label={LABEL}=labtest", "--format={{.Names}}").strip() == ""
    assert "hermes-labtest" not in podman("network", "ls", "--format={{.Name}}").split()
    assert "0 removed" in hermesctl("lab", "down")
