"""Running podman as the lab runs it: the project's containers.conf, errors as LabError."""

from __future__ import annotations

import subprocess

from hermes.errors import LabError
from hermes.lab.image import podman_env


def podman(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``podman ARGS``; with ``check``, a failure is a LabError naming the subcommand."""
    try:
        result = subprocess.run(["podman", *args], env=podman_env(), input=stdin, text=True, capture_output=True, check=False)
    except FileNotFoundError:
        raise LabError("podman is not installed (the README's commands install it)") from None
    if check and result.returncode != 0:
        raise LabError(f"podman {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result
