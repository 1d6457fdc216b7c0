"""What reaches ansible-runner when an estate is deployed: the exact call for each target, the
CLI handing that call over unchanged, and no secret on a command line or in a run's record."""

from __future__ import annotations

import copy
import functools
import getpass
import hashlib
import importlib.metadata
import io
import itertools
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ansible_runner
import pytest
from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.parsing.vault import VaultLib, VaultSecret
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from typer.testing import CliRunner

from hermes import cli
from hermes.deploy import (
    KEPT_RUNS,
    DeployEstate,
    DeployOptions,
    LabTarget,
    PromptedPassword,
    RunnerCall,
    SiteTarget,
    runner_call,
)
from hermes.lab.pki import HostNames, ensure_host_certificate, ensure_lab_pki, host_names
from hermes.lab.ssh import lab_ssh
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from hermes.progress import Counts, HostProgress, Tally, fold
from hermes.render.inventory import SECRETS
from hermes.runner import RunFailed, run_playbook
from hermes.summary import Hashed, RunSubject, tree_sha256
from tests.test_paths import LAYOUTS, copy_lab_estate
from tests.test_precheck import Authority, complete_vault, issue, write_vault

runner = CliRunner()
VENV_BIN = Path(sys.executable).parent
CALLER_PATH = "/usr/local/bin:/usr/bin:/bin"
# Where pip put Mitogen's strategy plugins: found here from the package's files, not its module.
MITOGEN = next(
    str(Path(str(file.locate())).parent)
    for file in importlib.metadata.files("mitogen") or []
    if file.name == "mitogen_linear.py" and file.parent.name == "strategy"
)


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
            "ANSIBLE_STRATEGY_PLUGINS": MITOGEN,
            "ANSIBLE_STRATEGY": "mitogen_linear",
        },
        extravars={
            "hermes_ca_certificates": [f"{certificates}/ca.crt"],
            "hermes_tls_certificate": f"{certificates}/hosts/{{{{ inventory_hostname }}}}.crt",
            "hermes_tls_key": f"{certificates}/hosts/{{{{ inventory_hostname }}}}.key",
        },
        passwords=passwords,
        suppress_env_files=True,
        rotate_artifacts=KEPT_RUNS,
        quiet=True,
    )


# The pure call, per target.


def test_lab_call(tmp_path: Path) -> None:
    home, state = tmp_path / "my estate", tmp_path / "lab state" / "lab"
    target = LabTarget(state / "vault.yml", state / "vault-password", lab_ssh(state))
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
                f"--extra-vars=@{PROJECT_ROOT}/inventory/lab-target.yml",
                f"--extra-vars=@{state}/vault.yml",
                f"--vault-password-file={state}/vault-password",
                "--user=root",
                f"--private-key={state}/ssh/controller.key",
                f"--ssh-common-args=-o 'UserKnownHostsFile={state}/ssh/known_hosts' -o StrictHostKeyChecking=yes",
            ]
        ),
        envvars={
            "ANSIBLE_CONFIG": f"{PROJECT_ROOT}/ansible.cfg",
            "PATH": f"{VENV_BIN}:{CALLER_PATH}",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_STRATEGY_PLUGINS": MITOGEN,
            "ANSIBLE_STRATEGY": "mitogen_linear",
        },
        extravars=None,
        passwords=None,
        suppress_env_files=True,
        rotate_artifacts=KEPT_RUNS,
        quiet=True,
    )
    # ansible-runner shlex-splits cmdline: each path comes back whole, spaces and all, and so
    # does Ansible's ssh connection with its common args.
    arguments = shlex.split(call.cmdline)
    assert f"--extra-vars=@{tmp_path}/lab state/lab/vault.yml" in arguments
    ssh_args = shlex.split(next(a for a in arguments if a.startswith("--ssh-common-args=")).split("=", 1)[1])
    assert ssh_args == ["-o", f"UserKnownHostsFile={tmp_path}/lab state/lab/ssh/known_hosts", "-o", "StrictHostKeyChecking=yes"]


def test_tags_reach_ansible_only_when_given(tmp_path: Path) -> None:
    target = SiteTarget(tmp_path / "vault.yml", tmp_path / "password", tmp_path / "pki")
    untagged = shlex.split(runner_call(lab_estate(tmp_path), target, DeployOptions(), path="").cmdline)
    assert not [a for a in untagged if a.startswith("--tags")]
    tagged = runner_call(lab_estate(tmp_path), target, DeployOptions(tags=("mta_configure", "dns_configure")), path="")
    assert shlex.split(tagged.cmdline)[:2] == ["--diff", "--tags=mta_configure,dns_configure"]
    assert not [a for a in untagged if a.startswith("--skip-tags")]
    skipping = runner_call(lab_estate(tmp_path), target, DeployOptions(skip_tags=("cyrus_store_provision",)), path="")
    assert shlex.split(skipping.cmdline)[:2] == ["--diff", "--skip-tags=cyrus_store_provision"]


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


# ansible-runner's events as its event_handler gets them (trimmed from a real run: the fields
# hermes reads, among some it does not).

PLAY = "Every host"
_COUNTER = itertools.count(1)


def _event(kind: str, /, **data: Any) -> dict[str, Any]:
    counter = next(_COUNTER)
    return {
        "uuid": f"00000000-0000-0000-0000-{counter:012}",
        "counter": counter,
        "event": kind,
        "pid": 4242,
        "created": "2025-05-01T10:00:00.000000+00:00",
        "event_data": {"playbook": "site.yml", "playbook_uuid": "0242ac11-0002", **data},
    }


def play_start(play: str) -> dict[str, Any]:
    return _event("playbook_on_play_start", play=play, play_pattern="all", name=play, pattern="all")


def task_start(task: str, play: str = PLAY) -> dict[str, Any]:
    return _event("playbook_on_task_start", play=play, task=task, task_action="ansible.builtin.command", name=task)


def on_host(kind: str, host: str, task: str, play: str = PLAY, **data: Any) -> dict[str, Any]:
    return _event(kind, play=play, task=task, task_action="ansible.builtin.command", host=host, remote_addr=host, **data)


def res(changed: bool, rc: int = 0, **more: Any) -> dict[str, Any]:
    return {"changed": changed, "rc": rc, "_ansible_no_log": False, **more}


def recap(**counts: dict[str, int]) -> dict[str, Any]:
    keys = ("changed", "dark", "failures", "ignored", "ok", "processed", "rescued", "skipped")
    return _event("playbook_on_stats", **{key: counts.get(key, {}) for key in keys}, artifact_data={})


FIRST_TASKS = [
    _event("playbook_on_start"),
    play_start(PLAY),
    task_start("Packages"),
    on_host("runner_on_start", "ppsw-1", "Packages"),
    on_host("runner_on_start", "ppsw-2", "Packages"),
    on_host("runner_on_ok", "ppsw-2", "Packages", res=res(False)),
    on_host("runner_on_ok", "ppsw-1", "Packages", res=res(True)),
    task_start("Configuration"),
    on_host("runner_on_start", "ppsw-1", "Configuration"),
    on_host("runner_on_start", "ppsw-2", "Configuration"),
    # A loop: each item reports, then the task itself, once per host.
    on_host("runner_item_on_ok", "ppsw-1", "Configuration", res=res(True, item="main.cf")),
    on_host("runner_item_on_ok", "ppsw-2", "Configuration", res=res(False, item="main.cf")),
    on_host("runner_item_on_ok", "ppsw-1", "Configuration", res=res(True, item="master.cf")),
    on_host("runner_on_ok", "ppsw-1", "Configuration", res=res(True, results=[{"changed": True}, {"changed": True}])),
    on_host("runner_item_on_ok", "ppsw-2", "Configuration", res=res(False, item="master.cf")),
    on_host("runner_on_ok", "ppsw-2", "Configuration", res=res(False, results=[{"changed": False}, {"changed": False}])),
]
# ppsw-2 fails a task that ignores errors: ok (and ignored), not failed.
GOOD_RUN = [
    *FIRST_TASKS,
    task_start("Optional probe"),
    on_host("runner_on_start", "ppsw-1", "Optional probe"),
    on_host("runner_on_skipped", "ppsw-1", "Optional probe"),
    on_host("runner_on_start", "ppsw-2", "Optional probe"),
    on_host("runner_on_failed", "ppsw-2", "Optional probe", res=res(False, 1, msg="non-zero return code"), ignore_errors=True),
    recap(
        ok={"ppsw-1": 2, "ppsw-2": 3},
        changed={"ppsw-1": 2},
        ignored={"ppsw-2": 1},
        skipped={"ppsw-1": 1},
        processed={"ppsw-1": 1, "ppsw-2": 1},
    ),
]
# ppsw-2 fails a task that does not ignore errors: failed, and not changed whatever its result says.
FAILED_RUN = [
    *FIRST_TASKS,
    task_start("Required probe"),
    on_host("runner_on_start", "ppsw-1", "Required probe"),
    on_host("runner_on_start", "ppsw-2", "Required probe"),
    on_host("runner_on_ok", "ppsw-1", "Required probe", res=res(False)),
    on_host("runner_on_failed", "ppsw-2", "Required probe", res=res(True, 1, msg="non-zero return code"), ignore_errors=None),
    recap(
        ok={"ppsw-1": 3, "ppsw-2": 2},
        changed={"ppsw-1": 2},
        failures={"ppsw-2": 1},
        processed={"ppsw-1": 1, "ppsw-2": 1},
    ),
]
# A run's subject where no estate is involved (ansible-runner driven directly).
SUBJECT = RunSubject(
    who="operator",
    controller="controller",
    estate="lab",
    estate_file=Hashed("/nowhere/lab.yml", "0" * 64),
    accounts_file=Hashed("/nowhere/lab.accounts", "0" * 64),
    inventory=Hashed("/nowhere/rendered/lab", "0" * 64),
    playbook="check.yml",
    limit=None,
    tags=(),
    check=False,
)


@pytest.fixture
def events() -> list[dict[str, Any]]:
    """What the fake ansible_runner.run reports to its event handler: a good run unless a test
    replaces the list's contents (``events[:] = FAILED_RUN``)."""
    return copy.deepcopy(GOOD_RUN)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ansible_runner.run replaced: each call's keyword arguments are kept; it hands ``events``
    to the event handler and ends as ansible-runner would after them (the run succeeds unless a
    host failed), its record in ``artifacts/<n>/`` for the n-th call."""
    made: list[dict[str, Any]] = []

    def run(**kwargs: Any) -> SimpleNamespace:
        handler = kwargs.pop("event_handler")
        made.append(kwargs)
        artifacts = Path(kwargs["private_data_dir"]) / "artifacts" / str(len(made))
        artifacts.mkdir(parents=True)
        for event in copy.deepcopy(events):
            assert handler(event) is True
        # ansible-runner's stats are the recap event's counts.
        recap = next(e["event_data"] for e in reversed(events) if e["event"] == "playbook_on_stats")
        stats = {key: recap[key] for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")}
        return SimpleNamespace(
            status="failed" if stats["failures"] or stats["dark"] else "successful",
            stats=stats,
            config=SimpleNamespace(artifact_dir=str(artifacts)),
            stdout=io.StringIO("TASK [Optional probe]\nfatal: [ppsw-2]: FAILED!\n"),
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


# The vault password of site_files(): in its password file, and what tests type at the prompt.
TYPED = "typed s3cret"


def site_files(home: Path, estate: Path) -> tuple[Path, Path, Path]:
    """What the prechecks pass for ``estate``: a vault with every secret, encrypted with
    TYPED, its password file, and a certificate directory issued as the lab's PKI is."""
    loaded = load_estate(estate)
    ensure_lab_pki(home / "pki", loaded)
    vault = write_vault(home / "vault.yml", complete_vault(loaded.accounts), TYPED)
    (home / "vault password").write_text(TYPED + "\n")
    return vault, home / "vault password", home / "pki"


def site_deploy(home: Path) -> tuple[Path, Path, Path, tuple[Path | str, ...]]:
    """The lab estate rendered in ``home`` with :func:`site_files`: the estate, the vault, the
    certificate directory, and the deploy options naming them."""
    estate = rendered_estate(home)
    vault, password, certificates = site_files(home, estate)
    return estate, vault, certificates, ("--vault", vault, "--vault-password-file", password, "--certificates", certificates)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deploy_site_hands_over_the_call(
    tmp_path: Path, calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    home = tmp_path / "my estate"
    estate = rendered_estate(home, layout)
    vault, password, certificates = site_files(home, estate)
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
    vault, _, certificates = site_files(home, estate)
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
    state = tmp_path / "lab state" / "lab"
    # Before `lab up` gave the lab its SSH access, the deploy is refused and nothing runs.
    code, output = hermesctl("deploy", "--lab", "-e", estate, "--output", "elsewhere")
    assert code == 2 and "run hermesctl lab up first" in output and calls == []
    (state / "ssh").mkdir(parents=True)
    (state / "ssh" / "known_hosts").write_text("")
    # Without the lab's certificates (lab up makes them too), the prechecks refuse, and nothing runs.
    code, output = hermesctl("deploy", "--lab", "-e", estate, "--output", "elsewhere")
    assert code == 4 and f"ppsw-1: {tmp_path}/lab state/pki/hosts/ppsw-1.crt is missing" in output and calls == []
    ensure_lab_pki(tmp_path / "lab state" / "pki", load_estate(estate))
    code, output = hermesctl("deploy", "--lab", "-e", estate, "--output", "elsewhere")
    assert code == 0, output
    assert f"prechecks: vault ({len(SECRETS)} secrets, passwords of 7 accounts), certificates (9 hosts) ok" in output
    assert (state / "vault.yml").is_file() and (state / "vault-password").is_file()
    expected = runner_call(
        DeployEstate("lab", other, home / ".hermes" / "lab" / "runs"),
        LabTarget(state / "vault.yml", state / "vault-password", lab_ssh(state)),
        DeployOptions(),
        path=os.environ.get("PATH", ""),
    )
    assert calls == [expected.kwargs()]


def test_deploy_site_needs_vault_and_certificates(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    home = tmp_path / "my estate"
    estate = rendered_estate(home)
    vault, password, certificates = site_files(home, estate)
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
    vault, password, certificates = site_files(home, estate)
    site = ("--vault", vault, "--vault-password-file", password, "--certificates", certificates)
    code, output = hermesctl("deploy", "-e", estate, *site)
    assert code == 1 and "is stale" in output
    assert calls == []

    records = tmp_path / "records" / "1"
    records.mkdir(parents=True)

    def failed(**kwargs: Any) -> SimpleNamespace:
        return SimpleNamespace(
            status="failed",
            stats={"failures": {"ppsw-2": 1}},
            config=SimpleNamespace(artifact_dir=str(records)),
            stdout=io.StringIO("TASK [x]\nfatal: [ppsw-2]: FAILED!\n"),
        )

    monkeypatch.setattr(ansible_runner, "run", failed)
    assert hermesctl("render", "-e", estate)[0] == 0
    code, output = hermesctl("deploy", "-e", estate, *site)
    assert code == 4
    assert f"site.yml failed on ppsw-2 (failed); the run's record is in {records}" in output
    assert "fatal: [ppsw-2]: FAILED!" in output


def test_a_failed_precheck_deploys_nothing_and_exits_4(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    home = tmp_path / "my estate"
    estate, vault, certificates, site = site_deploy(home)
    hosts = certificates / "hosts"
    # The vault lacks the webmail DES key, and has a user's password as YAML's number (which
    # would reach the directory changed); ppsw-1's certificate lacks smtp.lab.test; ppsw-2's key
    # is store-1a's. ph10 has no password, which is no problem: the vault holds initial
    # passwords, and such an account cannot log in until one is set (docs/directory.md).
    variables = complete_vault(load_estate(estate).accounts)
    del variables["vault_hermes_webmail_des_key"]
    variables["vault_hermes_user_passwords"]["dpc22"] = 31415926
    del variables["vault_hermes_user_passwords"]["ph10"]
    write_vault(vault, variables, TYPED)
    names = host_names(load_estate(estate), "ppsw-1")
    ensure_host_certificate(certificates, "ppsw-1", HostNames([n for n in names.dns if n != "smtp.lab.test"], names.addresses))
    good_key = (hosts / "ppsw-2.key").read_bytes()
    shutil.copy(hosts / "store-1a.key", hosts / "ppsw-2.key")
    code, output = hermesctl("deploy", "-e", estate, *site)
    assert code == 4, output
    assert calls == [] and not (home / ".hermes").exists()
    assert "prechecks failed, nothing was deployed (4 problems):" in output
    assert f"vault_hermes_webmail_des_key: missing from {vault}" in output
    assert "vault_hermes_user_passwords: not a string for 1 of 7 accounts: dpc22 (quote it in the vault)" in output
    assert f"ppsw-1: certificate {hosts}/ppsw-1.crt does not name smtp.lab.test" in output
    assert f"ppsw-2: key {hosts}/ppsw-2.key does not match certificate {hosts}/ppsw-2.crt" in output
    without_ph10 = (
        "warning: vault_hermes_user_passwords: no password for 1 of 7 accounts: ph10; they cannot log in until one is set"
        " (docs/directory.md)"
    )
    assert without_ph10 in output
    # No secret's value is shown.
    assert "value" not in output and "password of" not in output and "31415926" not in output
    # A wrong password (here typed) is one clear problem.
    code, output = hermesctl("deploy", "-e", estate, "--vault", vault, "--certificates", certificates, stdin="wrong\n")
    assert code == 4 and f"{vault}: cannot be decrypted with the vault password given" in output
    assert calls == []
    # The control: the same deploy with all four put right runs, saying what was checked; ph10,
    # still without a password, is a warning on stderr.
    variables["vault_hermes_webmail_des_key"] = "webmail_des_key value"
    variables["vault_hermes_user_passwords"]["dpc22"] = "password of dpc22"
    write_vault(vault, variables, TYPED)
    ensure_host_certificate(certificates, "ppsw-1", names)
    (hosts / "ppsw-2.key").write_bytes(good_key)
    result = runner.invoke(cli.app, ["deploy", "-e", str(estate), *map(str, site)], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    assert without_ph10 in result.stderr
    assert f"prechecks: vault ({len(SECRETS)} secrets, passwords of 7 accounts), certificates (9 hosts) ok" in result.stderr
    assert len(calls) == 1


def test_a_precheck_warning_deploys(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    home = tmp_path / "my estate"
    estate, _, certificates, site = site_deploy(home)
    hosts = certificates / "hosts"
    # A certificate ending in 10 days is worth a warning, and deploys.
    ca_key = serialization.load_pem_private_key((certificates / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = Authority(ca_key, x509.load_pem_x509_certificate((certificates / "ca.crt").read_bytes()))
    now = datetime.now(UTC)
    names = host_names(load_estate(estate), "ppsw-1")
    short = issue(ca, names, start=now - timedelta(days=80), end=now + timedelta(days=10, hours=1))
    (hosts / "ppsw-1.crt").write_bytes(short.certificate.public_bytes(serialization.Encoding.PEM))
    (hosts / "ppsw-1.key").write_bytes(
        short.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    code, output = hermesctl("deploy", "-e", estate, *site)
    assert code == 0, output
    assert re.search(rf"warning: ppsw-1: certificate {hosts}/ppsw-1.crt expires on \S+ \S+ UTC, in 10 days", output)
    # The vault (site_files') gives every account a password: it warns of nothing.
    assert "no password for" not in output
    assert len(calls) == 1


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
    tasks: set[tuple[str, str]] = set()
    result = run_playbook(local, SUBJECT, lambda tally: tasks.update((host, p.task) for host, p in tally.hosts.items()))
    assert result.status == "successful"
    assert ("localhost", "The vault was opened and the certificate paths are the host's") in tasks
    private = Path(local.private_data_dir)
    assert private == home / ".hermes" / "lab" / "runs" / "check"
    assert not (private / "env").exists()
    records = [p for p in private.rglob("*") if p.is_file()]
    assert records and not [p for p in records if typed.encode() in p.read_bytes()]


# Progress: ansible-runner's events folded, per host, into Ansible's counts and the current task.


def _counts(tally: Tally) -> dict[str, Counts]:
    return {host: progress.counts for host, progress in tally.hosts.items()}


def test_task_events_are_counted_as_ansible_recaps_them() -> None:
    good = functools.reduce(fold, GOOD_RUN[:-1], Tally())
    failed = functools.reduce(fold, FAILED_RUN[:-1], Tally())
    # A loop counts once, as its task; a failure its task ignores is ok and ignored, not failed ...
    assert _counts(good) == {"ppsw-1": Counts(ok=2, changed=2, skipped=1), "ppsw-2": Counts(ok=3, ignored=1)}
    # ... while one it does not ignore is failed, and not changed whatever its result says.
    assert _counts(failed) == {"ppsw-1": Counts(ok=3, changed=2), "ppsw-2": Counts(ok=2, failed=1)}
    # The live counts already agree with Ansible's recap, the last event.
    assert _counts(fold(good, GOOD_RUN[-1])) == _counts(good)
    assert _counts(fold(failed, FAILED_RUN[-1])) == _counts(failed)


def test_the_recap_has_the_last_word() -> None:
    events = [
        play_start("Hubs"),
        task_start("Try", "Hubs"),
        on_host("runner_on_start", "ppsw-1", "Try", "Hubs"),
        on_host("runner_on_failed", "ppsw-1", "Try", "Hubs", res=res(False, 1), ignore_errors=None),
        on_host("runner_on_unreachable", "ppsw-2", "Try", "Hubs", res={"unreachable": True, "msg": "No route to host"}),
        task_start("Recover", "Hubs"),
        on_host("runner_on_ok", "ppsw-1", "Recover", "Hubs", res=res(True)),
    ]
    live = functools.reduce(fold, events, Tally())
    assert _counts(live) == {"ppsw-1": Counts(ok=1, changed=1, failed=1), "ppsw-2": Counts(unreachable=1)}
    # The failure was in a block its rescue recovered: the task events cannot say so, the recap does.
    final = fold(
        live, recap(ok={"ppsw-1": 1}, changed={"ppsw-1": 1}, rescued={"ppsw-1": 1}, dark={"ppsw-2": 1}, processed={"ppsw-1": 1})
    )
    assert _counts(final) == {"ppsw-1": Counts(ok=1, changed=1, rescued=1), "ppsw-2": Counts(unreachable=1)}
    assert final.hosts["ppsw-1"].task == "Recover"
    # A key the recap has nothing for may come as 0 rather than a mapping.
    bare = _event("playbook_on_stats", ok={"mx-1": 1}, ignored=0, processed={"mx-1": 1})
    assert _counts(fold(Tally(), bare)) == {"mx-1": Counts(ok=1)}


def test_each_host_shows_its_play_and_latest_task() -> None:
    events = [
        *GOOD_RUN[:-1],
        play_start("Hubs"),
        task_start("Exim", "Hubs"),
        on_host("runner_on_start", "ppsw-1", "Exim", "Hubs"),
    ]
    tally = functools.reduce(fold, events, Tally())
    assert (tally.play, tally.task) == ("Hubs", "Exim")
    assert tally.hosts["ppsw-1"] == HostProgress(Counts(ok=2, changed=2, skipped=1), "Hubs", "Exim")
    # ppsw-2 has started nothing in the new play: it shows where it last was.
    assert tally.hosts["ppsw-2"] == HostProgress(Counts(ok=3, ignored=1), PLAY, "Optional probe")
    # Events saying nothing of a play, a task or a host's progress leave the tally as it was.
    for event in (
        _event("playbook_on_start"),
        _event("verbose", stdout="[WARNING]: something"),
        on_host("runner_item_on_ok", "ppsw-1", "Exim", "Hubs", res=res(True, item="a")),
        on_host("runner_retry", "ppsw-1", "Exim", "Hubs", res=res(False, 1)),
    ):
        assert fold(tally, event) is tally


# The run summary: the tree hash anyone can check, and what a deploy records and prints.

TREE_RECIPE = "cd \"$1\" && find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum"


def sha256sum_tree(root: Path) -> str:
    """The rendered tree's hash as docs/architecture.md says to check it, with coreutils."""
    done = subprocess.run(["sh", "-c", TREE_RECIPE, "sh", str(root)], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


def test_the_tree_hash_is_what_sha256sum_says(tmp_path: Path) -> None:
    tree = tmp_path / "rendered tree"
    (tree / "host_vars").mkdir(parents=True)
    (tree / "hosts.yml").write_text("all: {}\n")
    (tree / "host_vars" / "ppsw-1.yml").write_text("a: 1\n")
    (tree / "host_vars" / "Ppsw 2.yml").write_text("b: 2\n")
    (tree / "group_vars").mkdir()
    assert tree_sha256(tree) == sha256sum_tree(tree)
    before = tree_sha256(tree)
    (tree / "host_vars" / "ppsw-1.yml").write_text("a: 2\n")
    assert tree_sha256(tree) == sha256sum_tree(tree) != before
    (tree / "host_vars" / "ppsw-1.yml").write_text("a: 1\n")
    assert tree_sha256(tree) == before
    (tree / "host_vars" / "ppsw-1.yml").rename(tree / "host_vars" / "ppsw-3.yml")
    assert tree_sha256(tree) == sha256sum_tree(tree) != before


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recap_counts(**counts: int) -> dict[str, int]:
    return {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0, "rescued": 0, "ignored": 0, **counts}


def test_deploy_records_a_summary_of_the_run(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    home = tmp_path / "my estate"
    estate = rendered_estate(home).resolve()
    vault, _, certificates = site_files(home, estate)
    site = ("--vault", vault, "--certificates", certificates)
    tags = ("--tags", "mta_configure", "--tags", "mta_run")
    code, output = hermesctl("deploy", "-e", estate, *site, "--limit", "mx", *tags, "--check", stdin="typed s3cret\n")
    assert code == 0, output
    assert "--tags=mta_configure,mta_run" in shlex.split(calls[0]["cmdline"])
    record = home.resolve() / ".hermes" / "lab" / "runs" / "site" / "artifacts" / "1"
    text = (record / "summary.json").read_text()
    summary = json.loads(text)
    started, finished = (datetime.fromisoformat(summary.pop(key)) for key in ("started", "finished"))
    assert started.utcoffset() == timedelta(0) and started <= finished
    inventory = home.resolve() / "rendered" / "lab"
    assert summary == {
        "who": getpass.getuser(),
        "controller": socket.gethostname(),
        "estate": "lab",
        "estate_file": {"path": str(estate), "sha256": sha256(estate)},
        "accounts_file": {"path": str(estate.parent / "lab.accounts"), "sha256": sha256(estate.parent / "lab.accounts")},
        "inventory": {"path": str(inventory), "sha256": sha256sum_tree(inventory)},
        "playbook": "site.yml",
        "limit": "mx",
        "tags": ["mta_configure", "mta_run"],
        "check": True,
        "status": "successful",
        # From the events (GOOD_RUN), as Ansible's recap counts them.
        "hosts": {"ppsw-1": recap_counts(ok=2, changed=2, skipped=1), "ppsw-2": recap_counts(ok=3, ignored=1)},
        "changed": 2,
        "record": str(record),
    }
    # No secret: the typed vault password is in no file of the record.
    assert "s3cret" not in text
    # The recap per host, then, last, the line scripts read.
    assert re.search(r"ppsw-2\s*│\s*3\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*1\b", output), output
    assert output.splitlines()[-1] == f"site.yml on lab: successful, 2 changed; record in {record}"
    assert re.search(r": (successful|failed), (\d+) changed;", output.splitlines()[-1])


def test_a_failed_deploy_is_recorded_and_exits_4(
    tmp_path: Path, calls: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    home = tmp_path / "my estate"
    estate, _, _, site = site_deploy(home)
    runs = home / ".hermes" / "lab" / "runs" / "site" / "artifacts"
    events[:] = FAILED_RUN
    code, output = hermesctl("deploy", "-e", estate, *site)
    assert code == 4, output
    summary = json.loads((runs / "1" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["changed"] == 2
    assert summary["hosts"] == {"ppsw-1": recap_counts(ok=3, changed=2), "ppsw-2": recap_counts(ok=2, failed=1)}
    # The recap table, then the error; not the line of a successful run.
    assert re.search(r"ppsw-2\s*│\s*2\s*│\s*0\s*│\s*0\s*│\s*1\b", output), output
    assert f"site.yml failed on ppsw-2 (failed); the run's record is in {runs / '1'}" in output
    assert " changed; record in " not in output
    # The same deploy with a good run.
    events[:] = GOOD_RUN
    code, output = hermesctl("deploy", "-e", estate, *site)
    assert code == 0, output
    assert json.loads((runs / "2" / "summary.json").read_text())["status"] == "successful"


def test_deploy_json_prints_the_summary_only(tmp_path: Path, calls: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    home = tmp_path / "my estate"
    estate = rendered_estate(home)
    vault, password, certificates = site_files(home, estate)
    arguments = ["deploy", "-e", str(estate), "--vault", str(vault), "--certificates", str(certificates), "--json"]
    runs = home / ".hermes" / "lab" / "runs" / "site" / "artifacts"
    result = runner.invoke(cli.app, arguments, input="typed s3cret\n", env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    # stdout is summary.json, byte for byte, and nothing else: the password prompt is on stderr.
    # (CliRunner's stand-in for getpass echoes a space on stdout; getpass itself writes to the terminal.)
    assert result.stdout.removeprefix(" \n") == (runs / "1" / "summary.json").read_text()
    assert json.loads(result.stdout)["status"] == "successful"
    assert "Vault password" in result.stderr
    # A failed run prints its summary too, then the error on stderr, and exits 4.
    events[:] = FAILED_RUN
    result = runner.invoke(cli.app, [*arguments, "--vault-password-file", str(password)], env={"COLUMNS": "1000"})
    assert result.exit_code == 4, result.output
    assert result.stdout == (runs / "2" / "summary.json").read_text()
    assert json.loads(result.stdout)["status"] == "failed"
    assert "site.yml failed on ppsw-2 (failed)" in result.stderr


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_deploy_shows_each_hosts_progress_on_stderr(
    tmp_path: Path, calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # stderr as a terminal, where the live display draws (elsewhere it draws nothing).
    terminal = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=terminal, force_terminal=True, width=200))
    home = tmp_path / "my estate"
    estate = rendered_estate(home)
    vault, password, certificates = site_files(home, estate)
    code, output = hermesctl(
        "deploy", "-e", estate, "--vault", vault, "--vault-password-file", password, "--certificates", certificates
    )
    assert code == 0, output
    shown = ANSI.sub("", terminal.getvalue())
    # Its last frame: the play and task now, and per host its play, ok, changed, unreachable,
    # failed and latest task.
    assert "deploying lab with site.yml: Every host, Optional probe" in shown
    assert re.search(r"ppsw-1\s*│\s*Every host\s*│\s*2\s*│\s*2\s*│\s*0\s*│\s*0\s*│\s*Optional probe", shown), shown
    assert re.search(r"ppsw-2\s*│\s*Every host\s*│\s*3\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*Optional probe", shown), shown
    # The results are on stdout only.
    assert "changed; record in" not in shown and "changed; record in" in output


# A real run through ansible-runner, on two local hosts: counted as Ansible's own recap counts it.


def probe_play(section: str) -> str:
    """A local playbook of one play on every host, with ``section`` (its tasks or roles) after the header."""
    header = (
        "- name: Probe play\n  hosts: all\n  gather_facts: false\n"
        '  vars:\n    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    return header + section


def local_call(project: Path, runs: Path, hosts: str, *arguments: str) -> RunnerCall:
    """The ansible-runner call running ``project``/probe.yml on ``hosts`` (Ansible's "a,b," form) locally."""
    return RunnerCall(
        private_data_dir=str(runs / "probe"),
        project_dir=str(project),
        playbook=str(project / "probe.yml"),
        inventory=[hosts],
        limit=None,
        cmdline=shlex.join(["--connection=local", *arguments]),
        envvars={"PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"},
        extravars=None,
        passwords=None,
    )


PROBE = probe_play(
    """\
  tasks:
    - name: Fine
      ansible.builtin.command: "true"
      changed_when: false
    - name: Changes
      ansible.builtin.command: "true"
    - name: Loop
      ansible.builtin.command: "echo {{ item }}"
      loop: [a, b]
    - name: Refused but ignored
      ansible.builtin.command: "false"
      ignore_errors: true
    - name: Skipped
      ansible.builtin.command: "true"
      when: false
    - name: Fails on two
      ansible.builtin.command: "false"
      when: inventory_hostname == "two"
    - name: After
      ansible.builtin.command: "true"
      changed_when: false
"""
)


def test_a_real_run_is_counted_as_ansible_recaps_it(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "probe.yml").write_text(PROBE)
    call = local_call(project, tmp_path / "runs", "one,two,")
    tallies: list[Tally] = []
    with pytest.raises(RunFailed) as failure:
        run_playbook(call, SUBJECT, tallies.append)
    assert failure.value.exit_code == 4 and "probe.yml failed on two (failed)" in str(failure.value)
    # Why, from the run's events: the failed host's reason, and none for the host whose only
    # failure was ignored.
    assert "\ntwo: non-zero return code\n" in str(failure.value) and "\none: " not in str(failure.value)
    record = Path(failure.value.summary.record)
    summary = json.loads((record / "summary.json").read_text())
    events = sorted((json.loads(p.read_text()) for p in (record / "job_events").glob("*.json")), key=lambda e: e["counter"])
    stats = next(e["event_data"] for e in events if e["event"] == "playbook_on_stats")
    keys = {"ok": "ok", "changed": "changed", "failed": "failures", "unreachable": "dark", "skipped": "skipped"}
    keys |= {"rescued": "rescued", "ignored": "ignored"}
    ansible = {host: {name: stats[key].get(host, 0) for name, key in keys.items()} for host in stats["processed"]}
    assert (
        summary["hosts"]
        == ansible
        == {
            "one": recap_counts(ok=5, changed=3, skipped=2, ignored=1),
            "two": recap_counts(ok=4, changed=3, failed=1, skipped=1, ignored=1),
        }
    )
    assert summary["status"] == "failed" and summary["changed"] == 6
    # The task events alone (the live display's counts) already said the same.
    live = functools.reduce(fold, [e for e in events if e["event"] != "playbook_on_stats"], Tally())
    assert {host: asdict(progress.counts) for host, progress in live.hosts.items()} == ansible
    assert _counts(tallies[-1]) == _counts(live)
