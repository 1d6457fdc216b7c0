"""The one error hierarchy of hermes, and the one map of exit codes.

Core modules raise these; only the command side (:func:`hermes.console.report`) turns
them into messages and exit codes, so no caller ever sees a traceback for a user mistake.
Every command uses :class:`ExitCode`: hermesctl, ``python -m hermes.lab.image`` and the
scripts under ``scripts/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """Every exit status a hermes command or script ends with (README lists them)."""

    OK = 0
    # Two things that must agree do not: a committed render and a fresh one, a store
    # pair's live member and its receivers, a role's defaults and its argument specs.
    STALE = 1
    OUT_OF_SYNC = 1
    # hermesctl check: a probe of the live estate failed.
    PROBE_FAILED = 1
    # The estate file (or a file it names), or the command line, is wrong.
    INVALID = 2
    USAGE = 2
    LAB = 3
    DEPLOY = 4
    # A host the command had to ask could not be asked.
    UNREACHABLE = 5


class HermesError(Exception):
    """Base of every error hermes reports to a user; each subclass names its exit code."""

    exit_code: ClassVar[ExitCode] = ExitCode.STALE


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an estate: where (a dotted field path) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    @classmethod
    def unreadable(cls, path: str, file: object, error: OSError | UnicodeDecodeError) -> Problem:
        """``file`` (named at ``path``) could not be read: the system's reason, not a traceback."""
        return cls(path, f"cannot read {file}: {getattr(error, 'strerror', None) or error}")


class EstateError(HermesError):
    """The estate file (or a file it names) is unreadable or invalid."""

    exit_code = ExitCode.INVALID

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(HermesError):
    """A command was asked for something that cannot be: a missing option or file, an unknown name."""

    exit_code = ExitCode.USAGE


class StaleRenderError(HermesError):
    """The committed rendered inventory differs from a fresh render."""

    exit_code = ExitCode.STALE


class LabError(HermesError):
    """The local lab (podman containers, base image) could not be brought to the asked state."""

    exit_code = ExitCode.LAB


class RunError(HermesError):
    """An Ansible run (deploy) failed."""

    exit_code = ExitCode.DEPLOY


class VaultError(HermesError):
    """An ansible-vault file, or its password, could not be read, or the vault not decrypted."""

    exit_code = ExitCode.DEPLOY


class PrecheckError(HermesError):
    """What a deployment needs from the controller is wrong (a secret, a certificate): nothing ran."""

    exit_code = ExitCode.DEPLOY

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"prechecks failed, nothing was deployed ({count} problem{'s' if count != 1 else ''}):"]
        super().__init__("\n".join([*lines, *(f"  {p}" for p in self.problems)]))


class StoreError(HermesError):
    """A store host could not be asked (unreachable, command failed, unreadable answer)."""

    exit_code = ExitCode.UNREACHABLE
