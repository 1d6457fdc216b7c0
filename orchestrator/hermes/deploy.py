"""Deciding a deployment: the exact ansible-runner call that deploys an estate to a target.

Pure: :func:`runner_call` turns (estate, target, options) into a :class:`RunnerCall`, the
keyword arguments of ``ansible_runner.run``; :mod:`hermes.runner` makes the call, adding only
its event handler.

Two targets, both reached over SSH with host-key checking on (ansible.cfg says so, but
ansible-runner turns it off unless the environment says otherwise):

* :class:`LabTarget`: the local lab's containers, as root with the lab's own key and
  known_hosts (:mod:`hermes.lab.ssh`, made by ``hermesctl lab up``). Adds the lab CA and its
  offline ClamAV (``inventory/lab-target.yml``, which molecule scenarios pass too) as extra
  vars, and the generated lab vault.
* :class:`SiteTarget`: real hosts, with the operator's SSH login and known_hosts. Adds the
  estate's vault, its password (a file, or what was typed at a prompt, answered through
  ansible-runner's prompt mapping so it is never on a command line or in a file), and the TLS
  files from a certificate directory laid out as the lab's PKI.

A vault password never reaches the run's record: ansible-runner is told not to copy its
arguments into ``env/`` of the private data directory (``suppress_env_files``), where
``passwords`` would otherwise be written in clear, and where files left by an earlier run
would override some arguments of the next (its environment).
"""

from __future__ import annotations

import copy
import importlib.util
import shlex
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hermes.errors import RunError
from hermes.lab.ssh import LabSsh
from hermes.paths import PROJECT_ROOT

PLAYBOOKS = PROJECT_ROOT / "playbooks"
LAB_TARGET = PROJECT_ROOT / "inventory" / "lab-target.yml"
# What ansible-playbook --ask-vault-pass prints (ansible-core matches its prompt against this too).
VAULT_PROMPT = r"Vault password:\s*?$"
# Run records kept per playbook; older ones are removed by ansible-runner. A store operation
# makes three site.yml runs (its precheck, flip and confirming deploy), and its own record
# names the last two: enough for the operations of a day, at a few MB a run.
KEPT_RUNS = 50
# The ansible-playbook beside this interpreter (the project's venv) is the one run, whatever PATH says.
ANSIBLE_BIN = Path(sys.executable).parent
# Mitogen's linear strategy: one persistent Python per host for the whole run instead of a fresh
# interpreter (and module_utils import) per task, which was most of a no-op deploy's time
# (docs/lab.md). Same order and semantics as Ansible's linear strategy.
MITOGEN_STRATEGY = "mitogen_linear"


def mitogen_strategies() -> Path:
    """The directory of Mitogen's strategy plugins, in the installed ansible_mitogen package
    (found, not imported: only ansible-playbook loads it)."""
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or spec.origin is None:
        raise RunError("the mitogen package is not installed (scripts/bootstrap.sh installs it)")
    return Path(spec.origin).parent / "plugins" / "strategy"


@dataclass(frozen=True)
class DeployEstate:
    """An estate as a deployment needs it: its name, rendered inventory and run records."""

    name: str
    inventory: Path
    runs: Path


@dataclass(frozen=True)
class DeployOptions:
    playbook: str = "site.yml"
    limit: str | None = None
    check: bool = False
    # Ansible tags (each role tags its parts <role>_install, _configure, _run); the prechecks
    # run whatever the tags.
    tags: tuple[str, ...] = ()
    # Tags left out (a switchover skips the store's provisioning).
    skip_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabTarget:
    """The local lab: its vault and vault password file (``hermes.lab.vault.ensure_lab_vault``)
    and the SSH key and known_hosts ``lab up`` made."""

    vault: Path
    vault_password_file: Path
    ssh: LabSsh


@dataclass(frozen=True)
class PromptedPassword:
    """A vault password typed at a prompt: only ever handed to ansible-runner's prompt mapping."""

    text: str = field(repr=False)


@dataclass(frozen=True)
class SiteTarget:
    """Real hosts: the estate's vault, its password, a certificate directory (``ca.crt``,
    ``hosts/<host>.crt``, ``hosts/<host>.key``) and optionally the SSH login."""

    vault: Path
    vault_password: Path | PromptedPassword
    certificates: Path
    ssh_user: str | None = None


Target = LabTarget | SiteTarget


@dataclass(frozen=True)
class RunnerCall:
    """Exactly the keyword arguments given to ``ansible_runner.run`` (the runner adds only its
    event handler)."""

    private_data_dir: str
    project_dir: str
    playbook: str
    inventory: list[str]
    limit: str | None
    # ansible-runner shlex-splits this string; it is built with shlex.join so paths keep their spaces.
    cmdline: str
    envvars: dict[str, str]
    extravars: dict[str, Any] | None
    passwords: dict[str, str] | None = field(repr=False)
    suppress_env_files: bool = True
    rotate_artifacts: int = KEPT_RUNS
    quiet: bool = True

    def kwargs(self) -> dict[str, Any]:
        # Copies: ansible-runner updates some of the mappings it is given.
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}


def runner_call(estate: DeployEstate, target: Target, options: DeployOptions, *, path: str) -> RunnerCall:
    """The ansible-runner call deploying ``estate`` to ``target``; ``path`` is the caller's PATH."""
    arguments = [
        "--diff",
        *(["--check"] if options.check else []),
        *([f"--tags={','.join(options.tags)}"] if options.tags else []),
        *([f"--skip-tags={','.join(options.skip_tags)}"] if options.skip_tags else []),
    ]
    envvars = {
        "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"),
        "PATH": f"{ANSIBLE_BIN}:{path}",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_STRATEGY_PLUGINS": str(mitogen_strategies()),
        "ANSIBLE_STRATEGY": MITOGEN_STRATEGY,
    }
    extravars: dict[str, Any] | None = None
    passwords: dict[str, str] | None = None
    if isinstance(target, LabTarget):
        # Only the lab's own known_hosts, and a host missing from it is refused, not added.
        ssh_args = ["-o", f"UserKnownHostsFile={target.ssh.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        arguments += [
            f"--extra-vars=@{LAB_TARGET}",
            f"--extra-vars=@{target.vault}",
            f"--vault-password-file={target.vault_password_file}",
            "--user=root",
            f"--private-key={target.ssh.key}",
            f"--ssh-common-args={shlex.join(ssh_args)}",
        ]
    else:
        arguments.append(f"--extra-vars=@{target.vault}")
        if isinstance(target.vault_password, PromptedPassword):
            arguments.append("--ask-vault-pass")
            passwords = {VAULT_PROMPT: target.vault_password.text}
        else:
            arguments.append(f"--vault-password-file={target.vault_password}")
        if target.ssh_user:
            arguments.append(f"--user={target.ssh_user}")
        # The names the playbooks read, as lab-target.yml sets them for the lab.
        extravars = {
            "hermes_ca_certificates": [str(target.certificates / "ca.crt")],
            "hermes_tls_certificate": f"{target.certificates}/hosts/{{{{ inventory_hostname }}}}.crt",
            "hermes_tls_key": f"{target.certificates}/hosts/{{{{ inventory_hostname }}}}.key",
        }
    return RunnerCall(
        private_data_dir=str(estate.runs / Path(options.playbook).stem),
        project_dir=str(PROJECT_ROOT),
        playbook=str(PLAYBOOKS / options.playbook),
        inventory=[str(estate.inventory)],
        limit=options.limit,
        cmdline=shlex.join(arguments),
        envvars=envvars,
        extravars=extravars,
        passwords=passwords,
    )
