"""Running playbooks through ansible-runner: the boundary between hermes and Ansible.

It makes the call :func:`hermes.deploy.runner_call` decided, unchanged, folding each event the
run reports into a :class:`hermes.progress.Tally` that it hands to the caller as the run goes,
and handing each event itself to a caller that asks (``hermesctl plan`` reads the diffs).
Each run keeps its record under the call's private data directory, in ``artifacts/<run id>/``
as ansible-runner lays it out, and hermes adds its run summary there as ``summary.json``
(:mod:`hermes.summary`), for a failed run too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hermes.deploy import RunnerCall
from hermes.errors import RunError
from hermes.progress import Tally, fold
from hermes.summary import RunSubject, RunSummary


class RunFailed(RunError):
    """A failed run (exit 4), with the summary written for it."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_playbook(
    call: RunnerCall,
    subject: RunSubject,
    on_progress: Callable[[Tally], None],
    on_event: Callable[[Mapping[str, Any]], None] | None = None,
) -> RunSummary:
    """Run a playbook; ``on_progress`` gets the tally after each event, and ``on_event``, if
    given, the event. Write the run's summary, then raise :class:`RunFailed` if the run failed
    or a host failed or was unreachable."""
    import ansible_runner

    tally = Tally()
    # Why each failed or unreachable host failed, from the first such event: the events are
    # the run's structured record (the text of its output can lose lines).
    reasons: dict[str, str] = {}

    def handle(event: dict[str, Any]) -> bool:
        nonlocal tally
        tally = fold(tally, event)
        data = event.get("event_data", {})
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            reasons.setdefault(str(data.get("host")), str(data.get("res", {}).get("msg", "")).strip())
        on_progress(tally)
        if on_event is not None:
            on_event(event)
        # Kept in the run's record (job_events/).
        return True

    # ansible-runner wants the directory to exist; the records are the operator's alone.
    Path(call.private_data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    started = _now()
    result = ansible_runner.run(**call.kwargs(), event_handler=handle)
    finished = _now()
    stats = result.stats or {}
    failed = tuple(sorted(set(stats.get("failures", {})) | set(stats.get("dark", {}))))
    status = "failed" if result.status == "successful" and failed else result.status
    artifacts = Path(result.config.artifact_dir)
    hosts = {host: progress.counts for host, progress in sorted(tally.hosts.items())}
    summary = RunSummary(subject, started, finished, status, hosts, str(artifacts))
    (artifacts / "summary.json").write_text(summary.to_json(), encoding="utf-8")
    if status != "successful":
        tail = "\n".join(result.stdout.read().strip().splitlines()[-20:])
        why = "".join(f"{host}: {reasons[host]}\n" for host in failed if reasons.get(host))
        raise RunFailed(
            f"{Path(call.playbook).name} failed on {', '.join(failed) or 'the controller'} ({result.status}); "
            f"the run's record is in {artifacts}\n{why}{tail}",
            summary,
        )
    return summary
