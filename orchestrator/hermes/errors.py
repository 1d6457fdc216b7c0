"""The one error hierarchy of hermes.

Core modules raise these; only the CLI turns them into messages and exit codes
(see ``hermes.cli``), so no caller ever sees a traceback for a user mistake.
"""

from __future__ import annotations

from dataclasses import dataclass


class HermesError(Exception):
    """Base of every error hermes reports to a user."""

    exit_code = 1


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an estate: where (a dotted field path) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class EstateError(HermesError):
    """The estate file (or a file it names) is unreadable or invalid."""

    exit_code = 2

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class StaleRenderError(HermesError):
    """The committed rendered inventory differs from a fresh render."""

    exit_code = 1


class LabError(HermesError):
    """The local lab (podman containers, base image) could not be brought to the asked state."""

    exit_code = 3


class RunError(HermesError):
    """An Ansible run (deploy) failed."""

    exit_code = 4
