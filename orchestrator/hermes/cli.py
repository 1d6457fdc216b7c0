"""hermesctl: the command line. It parses options, calls the core, and reports.

Errors from the core arrive as HermesError and are reported here, in one place,
as one line per problem and an exit code, never as a traceback.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from hermes.console import EstateOption, err, out, reporting
from hermes.errors import PrecheckError, StaleRenderError, UsageError
from hermes.loader import LoadedEstate, load_estate
from hermes.paths import DEFAULT_ESTATE, LAB_STATE, PROJECT_ROOT, estate_home, estate_label, rendered_dir, runs_dir
from hermes.progress import Counts, Tally
from hermes.render import render_inventory
from hermes.rendered import changed_files, diff, write_tree
from hermes.store.cli import store_app

if TYPE_CHECKING:
    from hermes.summary import RunSummary

app = typer.Typer(
    help="Render, check and run a Hermes mail estate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Rendered inventory directory (default: <estate home>/rendered/<estate>).", file_okay=False
    ),
]


def _render(estate: Path, output: Path | None) -> tuple[LoadedEstate, Path, dict[str, str]]:
    loaded = load_estate(estate)
    target = output if output is not None else rendered_dir(loaded.estate.name, estate_home(estate.resolve()))
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
        out.print(changes or f"no changes in {target}", markup=False, end="" if changes else "\n")


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


class SchemaFormat(StrEnum):
    json = "json"
    markdown = "markdown"


@app.command()
def schema(
    format_: Annotated[
        SchemaFormat, typer.Option("--format", help="JSON Schema, or the Markdown reference in docs/.")
    ] = SchemaFormat.json,
) -> None:
    """Print the JSON Schema of the estate file (or its Markdown reference)."""
    from hermes.model import Estate
    from hermes.reference import estate_reference

    if format_ is SchemaFormat.markdown:
        out.print(estate_reference(), markup=False, end="")
    else:
        out.print(json.dumps(Estate.model_json_schema(), indent=2, sort_keys=True), markup=False)


lab_app = typer.Typer(help="The local lab: the estate's hosts as systemd containers.", no_args_is_help=True)
app.add_typer(lab_app, name="lab")
app.add_typer(store_app, name="store")


def _progress(message: str) -> None:
    err.print(f"[dim]{message}[/dim]", highlight=False)


@lab_app.command("image")
def lab_image(rebuild: Annotated[bool, typer.Option(help="Rebuild even if the image exists.")] = False) -> None:
    """Build the lab's base image (Debian 12, systemd) unless its recipe's image exists."""
    from hermes.lab.image import ensure_base_image

    with reporting():
        out.print(ensure_base_image(rebuild=rebuild, progress=_progress), markup=False)


@lab_app.command("up")
def lab_up(estate: EstateOption = DEFAULT_ESTATE) -> None:
    """Create (or start) one container per host of the estate, on the estate's own network."""
    from hermes.lab.containers import grant_ssh, lab_plan, up
    from hermes.lab.image import ensure_base_image
    from hermes.lab.pki import ensure_lab_pki
    from hermes.lab.ssh import ensure_controller_key, known_hosts, lab_ssh

    with reporting():
        loaded = load_estate(estate)
        plan = lab_plan(loaded)
        ensure_lab_pki(LAB_STATE / "pki", loaded)
        with err.status(f"bringing up the {plan.estate} lab"):
            changes = up(plan, ensure_base_image(progress=_progress), _progress)
            ssh = lab_ssh(LAB_STATE / plan.estate)
            host_keys = grant_ssh(plan, ensure_controller_key(ssh, f"hermes-lab-{plan.estate}"))
            ssh.known_hosts.write_text(known_hosts(host_keys))
        for change in changes:
            out.print(change, markup=False)
        out.print(f"lab {plan.estate}: {len(plan.hosts)} hosts up, {len(changes)} changes", markup=False)


@lab_app.command("down")
def lab_down(estate: EstateOption = DEFAULT_ESTATE) -> None:
    """Remove every container and the network the lab made for the estate."""
    from hermes.lab.containers import down, lab_plan

    with reporting():
        plan = lab_plan(load_estate(estate))
        removed = down(plan)
        for line in removed:
            out.print(line, markup=False)
        out.print(f"lab {plan.estate}: {len(removed)} removed", markup=False)


@lab_app.command("status")
def lab_status(estate: EstateOption = DEFAULT_ESTATE) -> None:
    """Show each lab host's address, container state and systemd state."""
    from rich.table import Table

    from hermes.lab.containers import lab_plan, status

    with reporting():
        plan = lab_plan(load_estate(estate))
        table = Table("host", "address", "container", "systemd", title=f"Lab {plan.estate} on {plan.network} ({plan.subnet})")
        for row in status(plan):
            table.add_row(row.name, row.address, row.container, row.systemd)
        out.print(table)


@app.command()
def deploy(
    estate: EstateOption = DEFAULT_ESTATE,
    output: OutputOption = None,
    lab: Annotated[bool, typer.Option("--lab", help="Deploy to the local lab's containers.")] = False,
    playbook: Annotated[str, typer.Option(help="Playbook under playbooks/.")] = "site.yml",
    limit: Annotated[str | None, typer.Option(help="Only these hosts or groups (Ansible pattern).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Report what would change; change nothing.")] = False,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tags", help="Only tasks with these Ansible tags (e.g. mta_configure); repeatable. Prechecks always run."),
    ] = None,
    vault: Annotated[
        Path | None,
        typer.Option(
            help="A real estate's ansible-vault file (required without --lab).", exists=True, dir_okay=False, resolve_path=True
        ),
    ] = None,
    vault_password_file: Annotated[
        Path | None,
        typer.Option(
            help="The vault's password file (default: ask for the password).", exists=True, dir_okay=False, resolve_path=True
        ),
    ] = None,
    certificates: Annotated[
        Path | None,
        typer.Option(
            help="A real estate's certificate directory: ca.crt, hosts/<host>.crt, hosts/<host>.key (required without --lab).",
            exists=True,
            file_okay=False,
            resolve_path=True,
        ),
    ] = None,
    ssh_user: Annotated[str | None, typer.Option(help="The SSH login on a real estate's hosts (default: Ansible's).")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the run's summary (its summary.json) instead of the table and last line.")
    ] = False,
) -> None:
    """Render the estate, then run a playbook (default site.yml) against its inventory: on its
    real hosts over SSH, or with --lab on the local lab's containers."""
    from rich.live import Live

    from hermes.deploy import DeployEstate, DeployOptions, LabTarget, PromptedPassword, SiteTarget, Target, runner_call
    from hermes.lab.ssh import lab_ssh
    from hermes.lab.vault import ensure_lab_vault
    from hermes.precheck import passed, precheck
    from hermes.runner import RunFailed, run_playbook
    from hermes.summary import run_subject

    with reporting():
        if not (PROJECT_ROOT / "playbooks" / playbook).is_file():
            raise UsageError(f"--playbook: no playbooks/{playbook}")
        site = _site_paths(lab, vault, vault_password_file, certificates, ssh_user)
        loaded, inventory, files = _render(estate, output)
        if changed_files(inventory, files):
            raise StaleRenderError(f"{inventory} is stale: run hermesctl render --estate {estate} and review the diff first")
        name = loaded.estate.name
        target: Target
        if site is None:
            ssh = lab_ssh(LAB_STATE / name)
            if not ssh.known_hosts.is_file():
                raise UsageError(f"--lab: the {name} lab has no SSH access yet ({ssh.known_hosts}): run hermesctl lab up first")
            target = LabTarget(*ensure_lab_vault(LAB_STATE / name, loaded.accounts), ssh)
        else:
            # Asked only now, once the deployment can go ahead; typed input is never echoed. On
            # stderr: stdout is for the results (--json).
            password = vault_password_file or PromptedPassword(typer.prompt("Vault password", hide_input=True, err=True))
            target = SiteTarget(site[0], password, site[1], ssh_user)
        # What the controller can tell is wrong stops the deploy before any host is touched.
        findings = precheck(loaded, target, LAB_STATE / "pki" if site is None else site[1])
        for warning in findings.warnings:
            err.print(f"warning: {warning}", style="yellow", markup=False)
        if findings.problems:
            raise PrecheckError(list(findings.problems))
        err.print(passed(loaded), markup=False)
        options = DeployOptions(playbook, limit, check, tuple(tags or ()))
        call = runner_call(
            # Absolute: ansible-playbook runs in the checkout, not in the caller's directory.
            DeployEstate(name, inventory.resolve(), runs_dir(name, estate_home(estate.resolve()))),
            target,
            options,
            path=os.environ.get("PATH", ""),
        )
        subject = run_subject(loaded, inventory, options)
        tally = Tally()

        def progress(now: Tally) -> None:
            nonlocal tally
            tally = now

        title = f"deploying {name} with {playbook}"
        try:
            # On stderr, redrawn from the latest tally, and gone once the run ends: stdout has the results.
            with Live(get_renderable=lambda: _progress_table(title, tally), console=err, transient=True):
                summary = run_playbook(call, subject, progress)
        except RunFailed as failure:
            _print_run(failure.summary, json_output)
            raise
        _print_run(summary, json_output)
        if not json_output:
            # scripts/benchmark-deploy.py and tests/test_lab.py read this line.
            out.print(
                f"{playbook} on {name}: {summary.status}, {summary.changed} changed; record in {summary.record}", markup=False
            )


# The counts to notice, in Ansible's colours, when not 0.
_COUNT_STYLES = {"changed": "yellow", "failed": "red", "unreachable": "red"}


def _count(counts: Counts, name: str) -> Text:
    number: int = getattr(counts, name)
    return Text(str(number), style=_COUNT_STYLES.get(name, "") if number else "")


def _progress_table(title: str, tally: Tally) -> Table:
    """The live display: per host, the play and task it is in (or last was) and its counts so far."""
    now = f": {tally.play}, {tally.task}" if tally.play else ""
    table = Table("host", "play", "ok", "changed", "unreachable", "failed", "task", title=Text(title + now))
    for host, progress in sorted(tally.hosts.items()):
        counts = progress.counts
        table.add_row(
            Text(host),
            Text(progress.play),
            *(_count(counts, n) for n in ("ok", "changed", "unreachable", "failed")),
            Text(progress.task),
        )
    return table


def _print_run(summary: RunSummary, as_json: bool) -> None:
    """The run's outcome on stdout: its summary as JSON, or a table of Ansible's recap per host."""
    if as_json:
        out.print(summary.to_json(), markup=False, emoji=False, end="")
        return
    names = [f.name for f in fields(Counts)]
    table = Table("host", *names, title=Text(f"{summary.subject.playbook} on {summary.subject.estate}: {summary.status}"))
    for host, counts in summary.hosts.items():
        table.add_row(Text(host), *(_count(counts, n) for n in names))
    out.print(table)


def _site_paths(
    lab: bool, vault: Path | None, vault_password_file: Path | None, certificates: Path | None, ssh_user: str | None
) -> tuple[Path, Path] | None:
    """(vault, certificate directory) for a real estate, None for the lab; a mistake is a UsageError."""
    site_options = {
        "--vault": vault,
        "--vault-password-file": vault_password_file,
        "--certificates": certificates,
        "--ssh-user": ssh_user,
    }
    if lab:
        given = [name for name, value in site_options.items() if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: only for a real estate; --lab uses the lab's own vault and CA")
        return None
    if vault is None or certificates is None:
        missing = [name for name in ("--vault", "--certificates") if site_options[name] is None]
        raise UsageError(
            f"{' and '.join(missing)} required without --lab: a real estate is deployed with its vault and certificate directory"
        )
    for needed in (certificates / "ca.crt", certificates / "hosts"):
        if not needed.exists():
            raise UsageError(f"--certificates: {certificates} has no {needed.name}")
    return vault, certificates


def main() -> None:
    app()
