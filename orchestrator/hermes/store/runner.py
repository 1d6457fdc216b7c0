"""How the store commands reach a host: a command run there as the cyrus user (or root).

:class:`PodmanRunner` is the lab (`podman exec` into the container named after the host),
:class:`SshRunner` a real estate (ssh to the host's address, then ``runuser``). Both
return the command's standard output or raise :class:`StoreError`; tests substitute
their own :class:`CommandRunner`.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from hermes.errors import StoreError

CYRUS_USER = "cyrus"

T = TypeVar("T")
R = TypeVar("R")


def on_each(items: Iterable[T], work: Callable[[T], R]) -> list[R]:
    """``work`` on every item at once (one host each: the time of the slowest, not the sum),
    the results in the items' order; the first item's error, in that order, is raised."""
    todo = list(items)
    with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
        return list(pool.map(work, todo))


class CommandRunner(Protocol):
    def run(self, host: str, argv: Sequence[str], *, user: str = CYRUS_USER, stdin: str | None = None) -> str:
        """Run ``argv`` on ``host`` as ``user`` (Cyrus's own by default), fed ``stdin``; its standard output."""
        ...


def _run(command: list[str], host: str, *, env: Mapping[str, str] | None, timeout: float, stdin: str | None = None) -> str:
    try:
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except FileNotFoundError:
        raise StoreError(f"{command[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise StoreError(f"{host}: no answer within {timeout:.0f} s") from None
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise StoreError(f"{host}: {command[0]} exited {result.returncode}: {detail[0]}")
    return result.stdout


class PodmanRunner:
    """The lab: each host is the podman container of the same name."""

    def __init__(self, *, timeout: float = 120.0) -> None:
        self.timeout = timeout

    def run(self, host: str, argv: Sequence[str], *, user: str = CYRUS_USER, stdin: str | None = None) -> str:
        from hermes.lab.image import podman_env

        interactive = ["--interactive"] if stdin is not None else []
        command = ["podman", "exec", *interactive, "--user", user, host, *argv]
        return _run(command, host, env=podman_env(), timeout=self.timeout, stdin=stdin)


class SshRunner:
    """A real estate: ssh (key-based, BatchMode) to the host's address as ``user``."""

    def __init__(self, addresses: Mapping[str, str], *, user: str = "root", timeout: float = 120.0) -> None:
        self.addresses = dict(addresses)
        self.user = user
        self.timeout = timeout

    def command(self, host: str, argv: Sequence[str], *, user: str = CYRUS_USER) -> list[str]:
        remote = shlex.join(list(argv) if user == self.user else ["runuser", "-u", user, "--", *argv])
        return ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", f"{self.user}@{self.addresses[host]}", remote]

    def run(self, host: str, argv: Sequence[str], *, user: str = CYRUS_USER, stdin: str | None = None) -> str:
        return _run(self.command(host, argv, user=user), host, env=None, timeout=self.timeout, stdin=stdin)
