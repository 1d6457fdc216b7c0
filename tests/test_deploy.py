"""What reaches ansible-runner when an estate is deployed: the exact call for each target, the
CLI handing that call over unchanged, and no secret on a command line or in a run's record."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ansible_runner
import pytest
from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.parsing.vault import VaultLib, VaultSecret
from typer.testing import CliRunner

from hermes import cli
from hermes.deploy import (
    DeployEstate,
    DeployOptions,
    LabTarget,
    PromptedPassword,
    RunnerCall,
    SiteTarget,
    runner_call,
)
from hermes.paths import PROJECT_ROOT
from hermes.runner import run_playbook
from tests.test_paths import LAYOUTS, copy_lab_estate

runner = CliRunner()
VENV_BIN = Path(sys.executable).parent
CALLER_PATH = "/usr/local/bin:/usr/bin:/bin"


def lab_estate(home: Path) -> DeployEstate:
    return DeployEstate("lab", home / "rendered" / "lab", home / ".hermes" / "lab" / "runs")


def site_call(home: Path, *, playbook: str, inventory: Path, args: list[str], passwords: dict[str, str] | None) -> RunnerCall:
    """The call every site deployment of the lab estate (home ``home``) must make."""
    certificates = home / "pki"
    return RunnerCall(
        private_data_dir=f"{home}/.hermes/lab/runs/{Path(playbook).stem}",
        project_dir=str(PROJECT_ROOT),
        playbook=f"{PROJECT_ROOT}/playbooks/{playbook}",
        inventory=[str(inventory)],
        limit=None,
        cmdline=shlex.join(args),
        envvars={
            "ANSIBLE_CONFIG": f"{PROJECT_ROOT}/ansible.cfg",
            "PATH": f"{VENV_BIN}:{CALLER_PATH}",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
        },
        extravars={
            "hermes_ca_certificates": [f"{certificates}/ca.crt"],
            "hermes_tls_certificate": f"{certificates}/hosts/{{{{ inventory_hostname }}}}.crt",
            "hermes_tls_key": f"{certificates}/hosts/{{{{ inventory_hostname }}}}.key",
        },
        passwords=passwords,
        suppress_env_files=True,
        rotate_artifacts=5,
        quiet=True,
    )


# The pure call, per target.


def test_lab_call(tmp_path: Path) -> None:
    home, state = tmp_path / "my estate", tmp_path / "lab state" / "lab"
    target = LabTarget(state / "vault.yml", state / "vault-password")
    call = runner_call(lab_estate(home), target, DeployOptions("common.yml", limit="mx", check=True), path=CALLER_PATH)
    assert call == RunnerCall(
        private_data_dir=f"{home}/.hermes/lab/runs/common",
        project_dir=str(PROJECT_ROOT),
        playbook=f"{PROJECT_ROOT}/playbooks/common.yml",
        inventory=[f"{home}/rendered/lab"],
        limit="mx",
        cmdline=shlex.join(
            [
                "--diff",
                "--check",
                f"--extra-vars=@{PROJECT_ROOT}/inventory/lab-connection.yml",
                f"--extra-vars=@{PROJECT_ROOT}/inventory/lab-target.yml",
                f"--extra-vars=@{state}/vault.yml",
                f"--vault-password-file={state}/vault-password",
            ]
        ),
        envvars={
            "ANSIBLE_CONFIG": f"{PROJECT_ROOT}/ansible.cfg",
            "PATH": f"{VENV_BIN}:{CALLER_PATH}",
            "CONTAINERS_CONF": f"{PROJECT_ROOT}/orchestrator/hermes/lab/containers.conf",
        },
        extravars=None,
        passwords=None,
        suppress_env_files=True,
        rotate_artifacts=5,
        quiet=True,
    )
    # ansible-runner shlex-splits cmdline: each path comes back whole, spaces and all.
    assert f"--extra-vars=@{tmp_path}/lab state/lab/vault.yml" in shlex.split(call.cmdline)


def test_site_call_with_a_password_file(tmp_path: Path) -> None:
    home = tmp_path / "my estate"
    target = SiteTarget(home / "vault.yml", tmp_path / "my secrets" / "vault password", home / "pki", ssh_user="admin")
    call = runner_call(lab_estate(home), target, DeployOptions(), path=CALLER_PATH)
    args = [
        "--diff",
        f"--extra-vars=@{home}/vault.yml",
        f"--vault-password-file={tmp_path}/my secrets/vault password",
        "--user=admin",
    ]
    assert call == site_call(home, playbook="site.yml", inventory=home / "rendered" / "lab", args=args, passwords=None)
    assert shlex.split(call.cmdline) == args
    assert "inventory/lab-" not in call.cmdline


def test_site_call_with_a_prompted_password(tmp_path: Path) -> None:
    home = tmp_path / "my estate"
    target = SiteTarget(home / "vault.yml", PromptedPassword("typed s3cret"), home / "pki")
    call = runner_call(lab_estate(home), target, DeployOptions(), path=CALLER_PATH)
    args = ["--diff", f"--extra-vars=@{home}/vault.yml", "--ask-vault-pass"]
    expected = site_call(
        home,
        playbook="site.yml",
        inventory=home / "rendered" / "lab",
        args=args,
        passwords={r"Vault password:\s*?$": "typed s3cret"},
    )
    assert call == expected
    # The password is only in the prompt mapping: not on the command line, in the environment, or in a repr.
    assert "s3cret" not in call.cmdline + repr(call.envvars) + repr(call) + repr(target)
    assert re.search(next(iter(call.passwords or {})), "Vault password: ", re.MULTILINE)


def test_kwargs_are_the_fields_as_copies(tmp_path: Path) -> None:
    call = runner_call(
        lab_estate(tmp_path), SiteTarget(tmp_path / "v", PromptedPassword("p"), tmp_path), DeployOptions(), path=""
    )
    kwargs = call.kwargs()
    assert kwargs == {f.name: getattr(call, f.name) for f in fields(RunnerCall)}
    kwargs["passwords"]["other"] = "x"
    kwargs["envvars"].clear()
    assert call.passwords == {r"Vault password:\s*?$": "p"} and call.envvars


# hermesctl deploy hands exactly that call to ansible-runner.


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """ansible_runner.run replaced: each call's keyword arguments are kept; the run succeeds."""
    made: list[dict[str, Any]] = []

    def run(**kwargs: Any) -> SimpleNamespace:
        assert callable(kwargs.pop("event_handler"))
        made.append(kwargs)
        artifacts = f"{kwargs['private_data_dir']}/artifacts/1"
        return SimpleNamespace(
            status="successful", stats={"changed": {"ppsw-1": 2}}, config=SimpleNamespace(artifact_dir=artifacts)
        )

    monkeypatch.setattr(ansible_runner, "run", run)
    return made


def hermesctl(*args: str | Path, stdin: str | None = None) -> tuple[int, str]:
    # Wide enough that Rich never wraps a message (with its temporary paths) inside the error panel.
    result = runner.invoke(cli.app, [str(a) for a in args], input=stdin, env={"COLUMNS": "1000"})
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def rendered_estate(directory: Path, layout: str = "estates-dir") -> Path:
    """The lab estate copied under ``directory`` and rendered into its home, as a user would."""
    estate = copy_lab_estate(directory, layout)
    assert hermesctl("render", "--estate", estate)[0] == 0
    return estate


def site_files(home: Path) -> tuple[Path, Path, Path]:
    """A vault file, its password file and a certificate directory laid out as the lab's PKI."""
    (home / "pki" / "hosts").mkdir(parents=True)
    (home / "pki" / "ca.crt").write_text("CA\n")
    (home / "vault.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n")
    (home / "vault password").write_text("s3cret\n")
    return home / "vault.yml", home / "vault password", home / "pki"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deploy_site_hands_over_the_call(
    tmp_path: Path, calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    home = tmp_path / "my estate"
    estate = rendered_estate(home, layout)
    vault, password, certificates = site_files(home)
    # Run from the estate's repository with relative paths, as an operator would: ansible-playbook
    # runs in the checkout, so every path must reach it absolute.
    monkeypatch.chdir(home)
    site = ("--vault", "vault.yml", "--vault-password-file", "vault password", "--certificates", "pki")
    options = ("--ssh-user", "admin", "--limit", "mx", "--check", "--playbook", "mta.yml")
    code, output = hermesctl("deploy", "-e", estate.relative_to(home), *site, *options)
    assert code == 0, output
    expected = runner_call(
        DeployEstate("lab", home / "rendered" / "lab", home / ".hermes" / "lab" / "runs"),
        SiteTarget(vault, password, certificates, "admin"),
        DeployOptions("mta.yml", limit="mx", check=True),
        path=os.environ.get("PATH", ""),
    )
    assert calls == [expected.kwargs()]
    # The estate's files are in its own home; the playbooks are the checkout's.
    assert calls[0]["inventory"] == [str(home / "rendered" / "lab")]
    assert calls[0]["playbook"] == str(PROJECT_ROOT / "playbooks" / "mta.yml")
    assert calls[0]["private_data_dir"] == str(home / ".hermes" / "lab" / "runs" / "mta")
    assert f"mta.yml on lab: successful, 2 changed; record in {home}/.hermes/lab/runs/mta/artifacts/1" in output


def test_deploy_site_prompts_for_the_password(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    home = tmp_path / "my estate"
    estate = rendered_estate(home)
    vault, _, certificates = site_files(home)
    code, output = hermesctl("deploy", "-e", estate, "--vault", vault, "--certificates", certificates, stdin="typed s3cret\n")
    assert code == 0, output
    expected = runner_call(
        DeployEstate("lab", home / "rendered" / "lab", home / ".hermes" / "lab" / "runs"),
        SiteTarget(vault, PromptedPassword("typed s3cret"), certificates),
        DeployOptions(),
        path=os.environ.get("PATH", ""),
    )
    assert calls == [expected.kwargs()]
    assert calls[0]["passwords"] == {r"Vault password:\s*?$": "typed s3cret"}
    assert "Vault password" in output and "typed s3cret" not in output


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deploy_lab_hands_over_the_call(
    tmp_path: Path, calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    monkeypatch.setattr(cli, "LAB_STATE", tmp_path / "lab state")
    home = tmp_path / "my estate"
    estate = rendered_estate(home, layout)
    other = tmp_path / "elsewhere"
    shutil.copytree(home / "rendered" / "lab", other)
    # A relative --output reaches ansible-runner absolute (ansible-playbook runs in the checkout).
    monkeypatch.chdir(tmp_path)
    code, output = hermesctl("deploy", "--lab", "-e", estate, "--output", "elsewhere")
    assert code == 0, output
    state = tmp_path / "lab state" / "lab"
    assert (state / "vault.yml").is_file() and (state / "vault-password").is_file()
    expected = runner_call(
        DeployEstate("lab", other, home / ".hermes" / "lab" / "runs"),
        LabTarget(state / "vault.yml", state / "vault-password"),
        DeployOptions(),
        path=os.environ.get("PATH", ""),
    )
    assert calls == [expected.kwargs()]


def test_deploy_site_needs_vault_and_certificates(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    home = tmp_path / "my estate"
    estate = rendered_estate(home)
    vault, password, certificates = site_files(home)
    options = {"--vault": vault, "--certificates": certificates}
    for missing in options:
        given = [str(a) for name, value in options.items() if name != missing for a in (name, value)]
        code, output = hermesctl("deploy", "-e", estate, "--vault-password-file", password, *given)
        assert code == 2, output
        assert f"{missing} required without --lab" in output
    code, output = hermesctl("deploy", "-e", estate)
    assert code == 2 and "--vault and --certificates required without --lab" in output
    # Options naming files that are not there, or not laid out as a certificate directory.
    code, output = hermesctl("deploy", "-e", estate, "--vault", home / "nothing.yml", "--certificates", certificates)
    assert code == 2 and "'--vault'" in output and "does not exist" in output
    code, output = hermesctl("deploy", "-e", estate, "--vault", vault, "--certificates", home, "--vault-password-file", password)
    assert code == 2 and "--certificates:" in output and "has no ca.crt" in output
    # Site options with --lab are a mistake, not ignored.
    code, output = hermesctl("deploy", "--lab", "-e", estate, "--vault", vault)
    assert code == 2 and "--vault: only for a real estate" in output
    assert calls == []
    # Positive control: with both, the same command deploys.
    code, output = hermesctl(
        "deploy", "-e", estate, "--vault-password-file", password, "--vault", vault, "--certificates", certificates
    )
    assert code == 0, output
    assert len(calls) == 1


def test_deploy_refuses_a_stale_render_and_reports_a_failed_run(
    tmp_path: Path, calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "my estate"
    estate = copy_lab_estate(home, "flat")
    vault, password, certificates = site_files(home)
    site = ("--vault", vault, "--vault-password-file", password, "--certificates", certificates)
    code, output = hermesctl("deploy", "-e", estate, *site)
    assert code == 1 and "is stale" in output
    assert calls == []

    def failed(**kwargs: Any) -> SimpleNamespace:
        return SimpleNamespace(
            status="failed",
            stats={"failures": {"ppsw-2": 1}},
            config=SimpleNamespace(artifact_dir="/records/1"),
            stdout=io.StringIO("TASK [x]\nfatal: [ppsw-2]: FAILED!\n"),
        )

    monkeypatch.setattr(ansible_runner, "run", failed)
    assert hermesctl("render", "-e", estate)[0] == 0
    code, output = hermesctl("deploy", "-e", estate, *site)
    assert code == 4
    assert "site.yml failed on ppsw-2 (failed); the run's record is in /records/1" in output
    assert "fatal: [ppsw-2]: FAILED!" in output


# ansible-runner itself: the prompted password answers Ansible's prompt and is written nowhere.

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: The vault was opened and the certificate paths are the host's
      ansible.builtin.assert:
        that:
          - vault_hermes_test == "opened"
          - hermes_tls_certificate == certificates ~ "/hosts/localhost.crt"
          - hermes_ca_certificates == [certificates ~ "/ca.crt"]
"""


def test_a_prompted_password_reaches_ansible_and_no_file(tmp_path: Path) -> None:
    home, project = tmp_path / "my estate", tmp_path / "my project"
    project.mkdir()
    (project / "check.yml").write_text(PLAYBOOK)
    home.mkdir()
    typed = "typed s3cret"
    vault = home / "vault.yml"
    vault.write_bytes(VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(typed.encode()))]).encrypt(b"vault_hermes_test: opened\n"))
    target = SiteTarget(vault, PromptedPassword(typed), home / "pki")
    call = runner_call(lab_estate(home), target, DeployOptions("check.yml"), path=os.environ.get("PATH", ""))
    # The same call, pointed at a local play instead of the estate's hosts.
    local = replace(
        call,
        project_dir=str(project),
        playbook=str(project / "check.yml"),
        inventory=["localhost,"],
        cmdline=shlex.join(
            [*shlex.split(call.cmdline), "--connection=local", "--extra-vars=" + json.dumps({"certificates": str(home / "pki")})]
        ),
    )
    tasks: list[tuple[str, str]] = []
    result = run_playbook(local, lambda host, task: tasks.append((host, task)))
    assert result.status == "successful"
    assert ("localhost", "The vault was opened and the certificate paths are the host's") in tasks
    private = Path(local.private_data_dir)
    assert private == home / ".hermes" / "lab" / "runs" / "check"
    assert not (private / "env").exists()
    records = [p for p in private.rglob("*") if p.is_file()]
    assert records and not [p for p in records if typed.encode() in p.read_bytes()]
