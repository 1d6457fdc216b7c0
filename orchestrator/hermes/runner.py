"""Running playbooks through ansible-runner: the boundary between hermes and Ansible.

It makes the call :func:`hermes.deploy.runner_call` decided, unchanged. Each run keeps its
record (events, stdout, status) under the call's private data directory, in
``artifacts/<run id>/`` as ansible-runner lays it out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermes.deploy import RunnerCall
from hermes.errors import RunError


@dataclass(frozen=True)
class RunResult:
    status: str
    changed: int
    artifacts: Path


def run_playbook(call: RunnerCall, on_task: Callable[[str, str], None]) -> RunResult:
    """Run a playbook; ``on_task(host, task)`` is called as each task finishes on a host."""
    import ansible_runner

    def handle(event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            on_task(str(data.get("host", "")), str(data.get("task", "")))
        return True

    # ansible-runner wants the directory to exist; the records are the operator's alone.
    Path(call.private_data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    result = ansible_runner.run(**call.kwargs(), event_handler=handle)
    stats = result.stats or {}
    failed = tuple(sorted(set(stats.get("failures", {})) | set(stats.get("dark", {}))))
    outcome = RunResult(result.status, sum(stats.get("changed", {}).values()), Path(result.config.artifact_dir))
    if result.status != "successful" or failed:
        tail = "\n".join(result.stdout.read().strip().splitlines()[-20:])
        raise RunError(
            f"{Path(call.playbook).name} failed on {', '.join(failed) or 'the controller'} ({result.status}); "
            f"the run's record is in {outcome.artifacts}\n{tail}"
        )
    return outcome
