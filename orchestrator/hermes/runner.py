"""Running playbooks through ansible-runner: the boundary between hermes and Ansible.

Each run keeps its record (events, stdout, status) under .lab/runs/<playbook>/
artifacts/, as ansible-runner lays it out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes.errors import RunError
from hermes.paths import LAB_STATE, PROJECT_ROOT


@dataclass(frozen=True)
class PlaybookRun:
    playbook: Path
    inventories: Sequence[Path]
    extra_vars_files: Sequence[Path] = ()
    vault_password_file: Path | None = None
    limit: str | None = None
    check: bool = False
    envvars: Mapping[str, str] | None = None


@dataclass(frozen=True)
class RunResult:
    status: str
    changed: int
    artifacts: Path


def run_playbook(run: PlaybookRun, on_task: Callable[[str, str], None]) -> RunResult:
    """Run a playbook; ``on_task(host, task)`` is called as each task finishes on a host."""
    import ansible_runner

    def handle(event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            on_task(str(data.get("host", "")), str(data.get("task", "")))
        return True

    private = LAB_STATE / "runs" / run.playbook.stem
    private.mkdir(parents=True, exist_ok=True)
    cmdline = [
        "--diff",
        *(["--check"] if run.check else []),
        *(f"--extra-vars=@{path}" for path in run.extra_vars_files),
        *([f"--vault-password-file={run.vault_password_file}"] if run.vault_password_file else []),
    ]
    result = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(PROJECT_ROOT),
        playbook=str(run.playbook),
        inventory=[str(i) for i in run.inventories],
        limit=run.limit,
        cmdline=" ".join(cmdline),
        envvars={
            "ANSIBLE_CONFIG": str(PROJECT_ROOT / "ansible.cfg"),
            # The ansible-playbook beside this interpreter (the project's venv), whatever PATH says.
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            **(run.envvars or {}),
        },
        event_handler=handle,
        quiet=True,
        rotate_artifacts=5,
    )
    stats = result.stats or {}
    failed = tuple(sorted(set(stats.get("failures", {})) | set(stats.get("dark", {}))))
    outcome = RunResult(result.status, sum(stats.get("changed", {}).values()), Path(result.config.artifact_dir))
    if result.status != "successful" or failed:
        tail = "\n".join(result.stdout.read().strip().splitlines()[-20:])
        raise RunError(
            f"{run.playbook.name} failed on {', '.join(failed) or 'the controller'} ({result.status}); "
            f"the run's record is in {outcome.artifacts}\n{tail}"
        )
    return outcome
