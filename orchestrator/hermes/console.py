"""What every hermesctl command group shares: its consoles, the estate option, and the one
place a HermesError becomes a message and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hermes.errors import EstateError, HermesError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EstateOption = Annotated[
    Path,
    typer.Option("--estate", "-e", help="The estate file.", envvar="HERMES_ESTATE", dir_okay=False),
]


@contextmanager
def reporting() -> Iterator[None]:
    """Turn a HermesError into its message on stderr and its exit code."""
    try:
        yield
    except EstateError as error:
        count = len(error.problems)
        err.print(
            f"{error.source} is not a valid estate ({count} problem{'s' if count != 1 else ''}):", style="bold red", markup=False
        )
        for problem in error.problems:
            err.print(f"  {problem}", markup=False)
        raise typer.Exit(error.exit_code) from None
    except HermesError as error:
        err.print(str(error), style="red", markup=False)
        raise typer.Exit(error.exit_code) from None
