"""A deploy's progress: ansible-runner's events folded into, per host, Ansible's counts and
what the host is doing.

Pure: :func:`fold` takes a :class:`Tally` and one event, a dict as ansible-runner hands it to
its ``event_handler``, and returns the next tally. Counts follow the task events as Ansible
counts them for its recap: a result is ``ok`` (and ``changed`` if it says so), ``failed``,
``skipped`` or ``unreachable``; an ignored failure is ``ok`` and ``ignored``, never
``failed``; a loop's per-item events are not counted, only the task's own result. The run's
last event, Ansible's recap (``playbook_on_stats``), then sets every count: it also knows what
task events cannot say, such as a failure a block rescued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Counts:
    """A host's counts, as (and in the order) Ansible's PLAY RECAP shows them."""

    ok: int = 0
    changed: int = 0
    unreachable: int = 0
    failed: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class HostProgress:
    counts: Counts = Counts()
    # The play and task the host last started or reported.
    play: str = ""
    task: str = ""


@dataclass(frozen=True)
class Tally:
    hosts: Mapping[str, HostProgress] = field(default_factory=dict)
    # The play and task running now (a host not in the play keeps its last ones).
    play: str = ""
    task: str = ""


# Each key of Ansible's recap, and the count it sets.
_RECAP = {
    "ok": "ok",
    "changed": "changed",
    "dark": "unreachable",
    "failures": "failed",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


def _counted(counts: Counts, event: str, data: Mapping[str, Any]) -> Counts:
    """``counts`` after one of the host's events (unchanged for one that is not a task's result)."""
    res = data.get("res")
    changed = int(isinstance(res, Mapping) and bool(res.get("changed")))
    if event == "runner_on_ok":
        return replace(counts, ok=counts.ok + 1, changed=counts.changed + changed)
    if event == "runner_on_failed" and data.get("ignore_errors"):
        return replace(counts, ok=counts.ok + 1, changed=counts.changed + changed, ignored=counts.ignored + 1)
    if event == "runner_on_failed":
        return replace(counts, failed=counts.failed + 1)
    if event == "runner_on_skipped":
        return replace(counts, skipped=counts.skipped + 1)
    if event == "runner_on_unreachable":
        return replace(counts, unreachable=counts.unreachable + 1)
    return counts


def _recap(tally: Tally, data: Mapping[str, Any]) -> Tally:
    # A key Ansible has nothing for may be 0 rather than a mapping.
    recap = {key: value for key, value in data.items() if key in _RECAP and isinstance(value, Mapping)}
    names = set(tally.hosts).union(*recap.values())
    hosts = {
        name: replace(
            tally.hosts.get(name, HostProgress()),
            counts=Counts(**{_RECAP[key]: int(per_host.get(name, 0)) for key, per_host in recap.items()}),
        )
        for name in names
    }
    return replace(tally, hosts=hosts)


def fold(tally: Tally, event: Mapping[str, Any]) -> Tally:
    """The tally after ``event``; an event that says nothing about progress leaves it as it was."""
    name = str(event.get("event", ""))
    data: Mapping[str, Any] = event.get("event_data") or {}
    if name == "playbook_on_play_start":
        return replace(tally, play=str(data.get("name", "")), task="")
    if name == "playbook_on_task_start":
        return replace(tally, task=str(data.get("task", "")))
    if name == "playbook_on_stats":
        return _recap(tally, data)
    host = data.get("host")
    if not host or not name.startswith("runner_on_"):
        return tally
    before = tally.hosts.get(str(host), HostProgress())
    now = HostProgress(
        _counted(before.counts, name, data), str(data.get("play") or before.play), str(data.get("task") or before.task)
    )
    return replace(tally, hosts={**tally.hosts, str(host): now})
