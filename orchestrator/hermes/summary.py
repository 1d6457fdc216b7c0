"""A deploy's run summary: who deployed which estate, from exactly which files, with which
playbook, and what came of it. :mod:`hermes.runner` writes it as ``summary.json`` beside
ansible-runner's own record of the run (``artifacts/<run id>/``); ``hermesctl deploy --json``
prints it.

It holds no secret by construction: names, paths, hashes, times and counts; never the
command line, the environment or a task's result, where one could be.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from hermes.deploy import DeployOptions
from hermes.loader import LoadedEstate
from hermes.progress import Counts


@dataclass(frozen=True)
class Hashed:
    """A file, or a directory tree, and its SHA-256 (:func:`file_sha256`, :func:`tree_sha256`)."""

    path: str
    sha256: str


@dataclass(frozen=True)
class RunSubject:
    """What a run deploys, by whom and from where: all known before it starts."""

    who: str
    controller: str
    estate: str
    estate_file: Hashed
    accounts_file: Hashed
    inventory: Hashed
    playbook: str
    limit: str | None
    tags: tuple[str, ...]
    check: bool


@dataclass(frozen=True)
class RunSummary:
    """A run's subject and what came of it."""

    subject: RunSubject
    # UTC, ISO 8601.
    started: str
    finished: str
    # "successful" exactly when the deploy exits 0: else ansible-runner's status ("failed",
    # "timeout", "canceled"), or "failed" if it said successful while a host failed.
    status: str
    hosts: Mapping[str, Counts]
    # ansible-runner's artifacts/<run id>/ directory, which holds summary.json.
    record: str

    @property
    def changed(self) -> int:
        return sum(counts.changed for counts in self.hosts.values())

    def to_json(self) -> str:
        """summary.json, and what ``deploy --json`` prints: the subject's fields and the outcome's,
        side by side."""
        outcome = asdict(self)
        document = {**outcome.pop("subject"), **outcome, "changed": self.changed}
        return json.dumps(document, indent=2, sort_keys=True) + "\n"


def file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def tree_sha256(root: Path) -> str:
    """The SHA-256 of ``sha256sum``'s line for each file under ``root``, by relative path, so
    anyone can check it: ``cd ROOT && find . -type f -printf '%P\\n' | LC_ALL=C sort |
    xargs -d '\\n' sha256sum | sha256sum``."""
    # Code-point order of the paths is the byte order of their UTF-8, sort's order under LC_ALL=C.
    names = sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())
    lines = "".join(f"{file_sha256(root / name)}  {name}\n" for name in names)
    return hashlib.sha256(lines.encode()).hexdigest()


def run_subject(loaded: LoadedEstate, inventory: Path, options: DeployOptions) -> RunSubject:
    """The subject of deploying ``loaded`` from its rendered ``inventory``, now, as this user:
    reads the estate file, its accounts file and the rendered tree for their hashes."""
    estate_file = loaded.source.resolve()
    # As the loader found it: beside the estate file as named, whatever a link resolves to.
    accounts_file = (loaded.source.parent / loaded.estate.accounts).resolve()
    inventory = inventory.resolve()
    return RunSubject(
        who=getpass.getuser(),
        controller=socket.gethostname(),
        estate=loaded.estate.name,
        estate_file=Hashed(str(estate_file), file_sha256(estate_file)),
        accounts_file=Hashed(str(accounts_file), file_sha256(accounts_file)),
        inventory=Hashed(str(inventory), tree_sha256(inventory)),
        playbook=options.playbook,
        limit=options.limit,
        tags=options.tags,
        check=options.check,
    )
