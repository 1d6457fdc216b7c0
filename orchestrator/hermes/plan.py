"""What a deploy would change, without changing anything: ``hermesctl plan``.

A plan is two diffs: the render's (the committed rendered inventory against a new render) and
Ansible's, from the deploy's own ansible-runner call in check mode (``--check --diff``)
against the new render.

Pure: :func:`task_change` reads one event of that run, as ansible-runner hands it to its
event handler, and returns the change a task would make on a host, its diff made unified as
ansible-playbook shows it (:func:`unified_diff`), only for a changed result and, in a loop,
only for its changed items. :class:`Mask` hides what must not be printed: every value of the
vault, and any PEM private key. :class:`Plan` is what ``plan`` prints, ``--json`` as
:meth:`Plan.to_json`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MASK = "********"
PRIVATE_KEY_HIDDEN = "[private key hidden]"
# A key from its BEGIN line to its END line, or to the end of the text if there is none (a
# diff's hunk, or the last lines of a run's output, can end inside a key).
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL)
# What is left of a key whose BEGIN line was cut off (a hunk's context can start inside one):
# its END line and the base64 lines before it, in a diff's lines or indented.
_KEY_END = re.compile(r"(?:^[ +-]?[ \t]*[A-Za-z0-9+/=]+[ \t]*\n)*^[ +-]?[ \t]*-----END [A-Z0-9 ]*PRIVATE KEY-----", re.MULTILINE)
# What Ansible's callbacks print for a diff a module gave up on, by its key.
_SKIPPED = {
    "dst_binary": "diff skipped: destination file appears to be binary\n",
    "src_binary": "diff skipped: source file appears to be binary\n",
    "dst_larger": "diff skipped: destination file size is greater than {}\n",
    "src_larger": "diff skipped: source file size is greater than {}\n",
}


@dataclass(frozen=True)
class TaskChange:
    """A task that would change a host, and its unified diff ("" when it shows none: a task with
    ``diff: false``, or a module that reports no diff)."""

    host: str
    task: str
    diff: str


# Ansible's diffs.


def _text(value: Any) -> str:
    # A structure (the file module's state, for one) as Ansible's default callback shows it,
    # JSON: unlike YAML, it never folds a long string or quotes one by doubling its quotes, so a
    # secret in it is still the vault's string, or its JSON escape, and can be masked.
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, indent=4, ensure_ascii=False) + "\n"


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def unified_diff(diff: Any) -> str:
    """A module's ``diff`` (a mapping, or a list of them: ``before``/``after`` with optional
    ``before_header``/``after_header``, or ``prepared`` text) as the unified diff
    ``ansible-playbook --diff`` prints, without colour."""
    chunks: list[str] = []
    for one in diff if isinstance(diff, list) else [diff]:
        if not isinstance(one, Mapping):
            continue
        chunks.extend(note.format(one[key]) for key, note in _SKIPPED.items() if key in one)
        if "before" in one and "after" in one:
            before = f"before: {one['before_header']}" if "before_header" in one else "before"
            after = f"after: {one['after_header']}" if "after_header" in one else "after"
            chunks.extend(
                difflib.unified_diff(_lines(_text(one["before"])), _lines(_text(one["after"])), fromfile=before, tofile=after)
            )
        if prepared := _text(one.get("prepared")):
            chunks.append(prepared if prepared.endswith("\n") else prepared + "\n")
    return "".join(chunks)


def _result_diff(result: Mapping[str, Any]) -> str:
    # A no_log result is censored by Ansible already; its diff is never shown, whatever is left.
    if result.get("_ansible_no_log"):
        return ""
    items = result.get("results")
    if isinstance(items, list):
        # A loop: its items' diffs, of the changed ones only, as ansible-playbook shows them.
        return "".join(_result_diff(item) for item in items if isinstance(item, Mapping) and item.get("changed"))
    return unified_diff(result.get("diff"))


def task_change(event: Mapping[str, Any]) -> TaskChange | None:
    """The change one event says a task would make on a host; None for any other event.

    Only a task's own result counts (``runner_on_ok`` with ``changed``): a loop's per-item
    events are in its result too, and a failed, skipped or unchanged task changes nothing.
    Named as Ansible names it, ``<role> : <task>`` for a role's task."""
    if event.get("event") != "runner_on_ok":
        return None
    data: Mapping[str, Any] = event.get("event_data") or {}
    result = data.get("res")
    if not isinstance(result, Mapping) or not result.get("changed"):
        return None
    task = str(data.get("task", ""))
    role = data.get("role")
    return TaskChange(str(data.get("host", "")), f"{role} : {task}" if role else task, _result_diff(result))


# Secrets.


def vault_secrets(variables: Any) -> set[str]:
    """Every string a vault's variables hold, however deep: a mapping's values, not its keys
    (``vault_hermes_user_passwords`` maps usernames, which are no secret, to passwords)."""
    if isinstance(variables, str):
        return {variables} if variables else set()
    values: Iterable[Any] = ()
    if isinstance(variables, Mapping):
        values = variables.values()
    elif isinstance(variables, list | tuple):
        values = variables
    return set().union(*(vault_secrets(value) for value in values))


def _trie(node: Mapping[str, Any]) -> str:
    """The pattern of a trie node: its children's, then optional if a word ends here, so the
    longest secret wins. A chain of single children is one literal, not one group per character."""
    branches = []
    for first, child in sorted(node.items()):
        if not first:
            continue
        run, below = first, child
        while len(below) == 1 and "" not in below:
            ((char, below),) = below.items()
            run += char
        branches.append(re.escape(run) + _trie(below))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
    return f"(?:{body})?" if "" in node else body


@dataclass(frozen=True)
class Mask:
    """Hides ``secrets`` (and any PEM private key) in text. A real estate's vault holds a
    password per account, tens of thousands: as one plain alternation, the regular expression
    would try each at every position of the text (seconds a page); as a trie, only what can
    follow what matched so far."""

    pattern: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Mask:
        # Each as it is, and as a JSON string holds it (a structure's diff is JSON; Ansible's
        # output may escape non-ASCII too).
        words = {
            word
            for secret in secrets
            if secret
            for word in (secret, json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1])
        }
        if not words:
            return cls()
        trie: dict[str, Any] = {}
        for word in words:
            node = trie
            for char in word:
                node = node.setdefault(char, {})
            node[""] = {}
        return cls(re.compile(_trie(trie)))

    def __call__(self, text: str) -> str:
        if "PRIVATE KEY-----" in text:
            text = _KEY_END.sub(PRIVATE_KEY_HIDDEN, _PRIVATE_KEY.sub(PRIVATE_KEY_HIDDEN, text))
        return self.pattern.sub(MASK, text) if self.pattern is not None else text


# The plan.


@dataclass(frozen=True)
class Plan:
    """The render's diff ("" when the committed render is current) and, per host checked, the
    tasks that would change it, in the order they ran."""

    render: str
    hosts: Mapping[str, tuple[TaskChange, ...]]

    @classmethod
    def of(cls, render: str, changes: Iterable[TaskChange], hosts: Iterable[str]) -> Plan:
        """``changes`` grouped by host; ``hosts`` are every host checked, a host with no change too."""
        changes = list(changes)
        names = sorted({*hosts, *(change.host for change in changes)})
        return cls(render, {name: tuple(c for c in changes if c.host == name) for name in names})

    def masked(self, mask: Mask) -> Plan:
        """The plan with ``mask`` applied to every text it holds."""
        return Plan(
            mask(self.render),
            {
                host: tuple(TaskChange(c.host, mask(c.task), mask(c.diff)) for c in changes)
                for host, changes in self.hosts.items()
            },
        )

    def to_json(self) -> str:
        """What ``plan --json`` prints: ``{"render": <diff>, "hosts": {<host>: [{"task", "diff"}]}}``."""
        hosts = {host: [{"task": c.task, "diff": c.diff} for c in changes] for host, changes in self.hosts.items()}
        return json.dumps({"render": self.render, "hosts": hosts}, indent=2, sort_keys=True) + "\n"
