"""hermesctl: the command line. It parses options, calls the core, and reports.

Errors from the core arrive as HermesError and are reported here, in one place,
as one line per problem and an exit code, never as a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hermes.errors import EstateError, HermesError, StaleRenderError
from hermes.loader import LoadedEstate, load_estate
from hermes.paths import DEFAULT_ESTATE, estate_label, rendered_dir
from hermes.render import render_inventory
from hermes.rendered import changed_files, diff, write_tree

app = typer.Typer(
    help="Render, check and run a Hermes mail estate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EstateOption = Annotated[
    Path,
    typer.Option("--estate", "-e", help="The estate file.", envvar="HERMES_ESTATE", dir_okay=False),
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Rendered inventory directory [default: inventory/rendered/<estate>].", file_okay=False),
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


def _render(estate: Path, output: Path | None) -> tuple[LoadedEstate, Path, dict[str, str]]:
    loaded = load_estate(estate)
    target = output if output is not None else rendered_dir(loaded.estate.name)
    return loaded, target, render_inventory(loaded, estate_label(estate))


@app.command()
def validate(estate: EstateOption = DEFAULT_ESTATE) -> None:
    """Check an estate file and everything it names; report every problem."""
    with reporting():
        loaded = load_estate(estate)
        out.print(
            f"{estate}: valid estate {loaded.estate.name!r}: {len(loaded.estate.hosts)} hosts, "
            f"{len(loaded.estate.services.store_pairs)} store pairs, {len(loaded.accounts):,} accounts",
            markup=False,
        )


@app.command()
def render(
    estate: EstateOption = DEFAULT_ESTATE,
    output: OutputOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; fail with a diff if the rendered files are stale.")
    ] = False,
) -> None:
    """Render the estate into its Ansible inventory."""
    with reporting():
        _, target, files = _render(estate, output)
        if check:
            stale = diff(target, files)
            if stale:
                out.print(stale, markup=False, end="")
                raise StaleRenderError(f"{target} is stale: run hermesctl render --estate {estate}")
            out.print(f"{target} is up to date ({len(files)} files)", markup=False)
            return
        changed = write_tree(target, files)
        out.print(f"{target}: {len(changed)} of {len(files)} files changed", markup=False)


@app.command("diff")
def diff_command(estate: EstateOption = DEFAULT_ESTATE, output: OutputOption = None) -> None:
    """Show what a render would change in the rendered inventory."""
    with reporting():
        _, target, files = _render(estate, output)
        changes = diff(target, files)
        out.print(
            changes or f"no changes: {len(changed_files(target, files))} files differ", markup=False, end="" if changes else "\n"
        )


class View(StrEnum):
    hosts = "hosts"
    pairs = "pairs"
    placement = "placement"
    capacity = "capacity"
    all = "all"


@app.command()
def show(
    view: Annotated[View, typer.Argument(help="What to show.")] = View.all,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Show the estate as tables: hosts, store pairs, placement and capacity."""
    from hermes.tables import TABLES

    with reporting():
        loaded = load_estate(estate)
        for name, table in TABLES.items():
            if view in (View.all, name):
                out.print(table(loaded))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the estate file."""
    from hermes.model import Estate

    out.print(json.dumps(Estate.model_json_schema(), indent=2, sort_keys=True), markup=False)


def main() -> None:
    app()
