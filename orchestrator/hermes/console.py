"""What every hermes command shares: its consoles, the estate option, and the one place a
HermesError becomes a message and an exit code (:func:`report`; :func:`reporting` for
Typer commands)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hermes.errors import EstateError, ExitCode, HermesError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EstateOption = Annotated[
    Path,
    typer.Option("--estate", "-e", help="The estate file.", envvar="HERMES_ESTATE", dir_okay=False),
]


def report(error: HermesError) -> ExitCode:
    """Print ``error`` on stderr as every hermes command does; return its exit code."""
    if isinstance(error, EstateError):
        count = len(error.problems)
        err.print(
            f"{error.source} is not a valid estate ({count} problem{'s' if count != 1 else ''}):", style="bold red", markup=False
        )
        for problem in error.problems:
            err.print(f"  {problem}", markup=False)
    else:
        err.print(str(error), style="red", markup=False)
    return error.exit_code


@contextmanager
def reporting() -> Iterator[None]:
    """In a Typer command: turn a HermesError into its message on stderr and its exit code."""
    try:
        yield
    except HermesError as error:
        raise typer.Exit(report(error)) from None
