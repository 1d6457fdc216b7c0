"""hermesctl: the command line. It parses options, calls the core, and reports.

Errors from the core arrive as HermesError and are reported here, in one place,
as one line per problem and an exit code, never as a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from hermes.console import EstateOption, err, out, reporting
from hermes.errors import ExitCode, HermesError, PrecheckError, Problem, StaleRenderError, UsageError
from hermes.loader import LoadedEstate, load_estate
from hermes.mailbox.cli import mailbox_app
from hermes.paths import DEFAULT_ESTATE, LAB_STATE, PROJECT_ROOT, estate_home, estate_label, rendered_dir, runs_dir
from hermes.progress import Counts, Tally
from hermes.relocations import refuse_relocating_render
from hermes.render import render_inventory
from hermes.rendered import diff, write_tree
from hermes.store.cli import store_app

if TYPE_CHECKING:
    from hermes.deploy import DeployOptions, RunnerCall, Target
    from hermes.plan import Plan
    from hermes.store.fence import Fencer
    from hermes.store.missing import Delivery
    from hermes.store.operation import Deploy, FlipPlan, PairOperation, Step
    from hermes.store.runner import CommandRunner
    from hermes.summary import RunSubject, RunSummary

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


def _render(estate: Path, output: Path | None, moved: Sequence[str] = ()) -> tuple[LoadedEstate, Path, dict[str, str]]:
    """The estate loaded and rendered, with where its render goes; refused if the render
    would place a user on another pair than the one holding their mail (unless ``moved``)."""
    loaded = load_estate(estate)
    target = output if output is not None else rendered_dir(loaded.estate.name, estate_home(estate.resolve()))
    files = render_inventory(loaded, estate_label(estate))
    refuse_relocating_render(target, files, loaded.placement, moved)
    return loaded, target, files


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
    accept_move: Annotated[
        list[str] | None,
        typer.Option(
            "--accept-move",
            metavar="USER",
            help="USER's mail has been moved to the pair the estate now places them on (repeatable).",
        ),
    ] = None,
) -> None:
    """Render the estate into its Ansible inventory."""
    with reporting():
        _, target, files = _render(estate, output, accept_move or ())
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
app.add_typer(mailbox_app, name="mailbox")


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
            changes = up(plan, loaded, ensure_base_image(progress=_progress), _progress)
            ssh = lab_ssh(LAB_STATE / plan.estate)
            host_keys = grant_ssh(plan, ensure_controller_key(ssh, f"hermes-lab-{plan.estate}"))
            ssh.known_hosts.write_text(known_hosts(host_keys))
        for change in changes:
            out.print(change, markup=False)
        out.print(f"lab {plan.estate}: {len(plan.hosts)} hosts up, {len(changes)} changes", markup=False)


@lab_app.command("guide")
def lab_guide(estate: EstateOption = DEFAULT_ESTATE) -> None:
    """How to use the deployed lab: addresses, a user and their password, a mail client, a browser."""
    from hermes.lab.guide import guide

    with reporting():
        loaded = load_estate(estate)
        out.print(guide(loaded, LAB_STATE / loaded.estate.name, LAB_STATE / "pki" / "ca.crt"), markup=False, end="")


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
        networks = ", ".join(f"{n.name} ({n.subnet})" for n in plan.networks)
        table = Table("host", "address", "container", "systemd", title=f"Lab {plan.estate} on {networks}")
        for row in status(plan):
            table.add_row(row.name, row.address, row.container, row.systemd)
        out.print(table)


# The options deploy and plan share.
LabOption = Annotated[bool, typer.Option("--lab", help="The local lab's containers instead of a real estate's hosts.")]
PlaybookOption = Annotated[str, typer.Option(help="Playbook under playbooks/.")]
LimitOption = Annotated[str | None, typer.Option(help="Only these hosts or groups (Ansible pattern).")]
TagsOption = Annotated[
    list[str] | None,
    typer.Option("--tags", help="Only tasks with these Ansible tags (e.g. mta_configure); repeatable. Prechecks always run."),
]
SkipTagsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--skip-tags",
        help="Leave out tasks with these Ansible tags (e.g. cyrus_store_provision after a stopped switchover); repeatable.",
    ),
]
VaultOption = Annotated[
    Path | None,
    typer.Option(
        help="A real estate's ansible-vault file (required without --lab).", exists=True, dir_okay=False, resolve_path=True
    ),
]
VaultPasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        help="The vault's password file (default: ask for the password).", exists=True, dir_okay=False, resolve_path=True
    ),
]
CertificatesOption = Annotated[
    Path | None,
    typer.Option(
        help="A real estate's certificate directory: ca.crt, hosts/<host>.crt, hosts/<host>.key (required without --lab).",
        exists=True,
        file_okay=False,
        resolve_path=True,
    ),
]
SshUserOption = Annotated[str | None, typer.Option(help="The SSH login on a real estate's hosts (default: Ansible's).")]

# Given the committed rendered inventory, the new render's files and the diff between them, the
# inventory to run against (or an error).
InventoryFor = Callable[[Path, dict[str, str], str], Path]


@dataclass(frozen=True)
class _Deployment:
    """A deployment the prechecks passed: the estate, its target and the exact ansible-runner call."""

    loaded: LoadedEstate
    # The committed rendered inventory, and the new render's diff from it ("" when current).
    committed: Path
    render_diff: str
    target: Target
    call: RunnerCall
    subject: RunSubject


def _target(
    loaded: LoadedEstate, site: tuple[Path, Path] | None, vault_password_file: Path | None, ssh_user: str | None
) -> Target:
    """The lab (its vault and SSH access), or a real estate's vault, password and certificates."""
    from hermes.credentials import vault_keys
    from hermes.deploy import LabTarget, PromptedPassword, SiteTarget
    from hermes.lab.ssh import lab_ssh
    from hermes.lab.vault import ensure_lab_vault

    name = loaded.estate.name
    if site is None:
        return LabTarget(
            *ensure_lab_vault(LAB_STATE / name, loaded.accounts, vault_keys(loaded.estate)), lab_ssh(LAB_STATE / name)
        )
    # Asked only now, once the command can go ahead; typed input is never echoed. On stderr:
    # stdout is for the results (--json).
    password = vault_password_file or PromptedPassword(typer.prompt("Vault password", hide_input=True, err=True))
    return SiteTarget(site[0], password, site[1], ssh_user)


def _deployment(
    estate: Path,
    output: Path | None,
    options: DeployOptions,
    *,
    lab: bool,
    vault: Path | None,
    vault_password_file: Path | None,
    certificates: Path | None,
    ssh_user: str | None,
    inventory_for: InventoryFor,
) -> _Deployment:
    """What deploy and plan share: the options checked, the estate rendered, the target made
    (asking for the vault password if need be), the prechecks and the runner call."""
    from hermes.deploy import DeployEstate, runner_call
    from hermes.lab.ssh import lab_ssh
    from hermes.precheck import passed, precheck
    from hermes.summary import run_subject

    if not (PROJECT_ROOT / "playbooks" / options.playbook).is_file():
        raise UsageError(f"--playbook: no playbooks/{options.playbook}")
    site = _site_paths(lab, vault, vault_password_file, certificates, ssh_user)
    loaded, committed, files = _render(estate, output)
    render_diff = diff(committed, files)
    inventory = inventory_for(committed, files, render_diff)
    name = loaded.estate.name
    if site is None and not (known_hosts := lab_ssh(LAB_STATE / name).known_hosts).is_file():
        raise UsageError(f"--lab: the {name} lab has no SSH access yet ({known_hosts}): run hermesctl lab up first")
    target = _target(loaded, site, vault_password_file, ssh_user)
    # What the controller can tell is wrong stops the deploy before any host is touched.
    findings = precheck(loaded, target, LAB_STATE / "pki" if site is None else site[1])
    for warning in findings.warnings:
        err.print(f"warning: {warning}", style="yellow", markup=False)
    if findings.problems:
        raise PrecheckError(list(findings.problems))
    err.print(passed(loaded), markup=False)
    call = runner_call(
        # Absolute: ansible-playbook runs in the checkout, not in the caller's directory.
        DeployEstate(name, inventory.resolve(), runs_dir(name, estate_home(estate.resolve()))),
        target,
        options,
        path=os.environ.get("PATH", ""),
    )
    return _Deployment(loaded, committed, render_diff, target, call, run_subject(loaded, inventory, options))


def _run(deployment: _Deployment, title: str, on_event: Callable[[Mapping[str, Any]], None] | None = None) -> RunSummary:
    """Run the deployment, its progress drawn live on stderr; RunFailed if it fails."""
    from rich.live import Live

    from hermes.runner import run_playbook

    tally = Tally()

    def progress(now: Tally) -> None:
        nonlocal tally
        tally = now

    # On stderr, redrawn from the latest tally, and gone once the run ends: stdout has the results.
    with Live(get_renderable=lambda: _progress_table(title, tally), console=err, transient=True):
        return run_playbook(deployment.call, deployment.subject, progress, on_event)


@app.command()
def deploy(
    estate: EstateOption = DEFAULT_ESTATE,
    output: OutputOption = None,
    lab: LabOption = False,
    playbook: PlaybookOption = "site.yml",
    limit: LimitOption = None,
    check: Annotated[bool, typer.Option("--check", help="Report what would change; change nothing.")] = False,
    tags: TagsOption = None,
    skip_tags: SkipTagsOption = None,
    render_first: Annotated[
        bool,
        typer.Option("--render", help="If the rendered inventory is stale, write the new render first (its diff on stderr)."),
    ] = False,
    vault: VaultOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    certificates: CertificatesOption = None,
    ssh_user: SshUserOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the run's summary (its summary.json) instead of the table and last line.")
    ] = False,
) -> None:
    """Render the estate, then run a playbook (default site.yml) against its inventory: on its
    real hosts over SSH, or with --lab on the local lab's containers."""
    from hermes.deploy import DeployOptions
    from hermes.runner import RunFailed

    def current(inventory: Path, files: dict[str, str], render_diff: str) -> Path:
        # What is deployed is what was reviewed: a stale render is refused unless --render
        # writes the new one, showing what it wrote.
        if render_diff and not render_first:
            raise StaleRenderError(
                f"{inventory} is stale: run hermesctl render --estate {estate} and review the diff first, "
                "or deploy with --render to write the new render (its diff on stderr) and deploy it"
            )
        if render_diff:
            err.print(render_diff, markup=False, emoji=False, end="")
            changed = write_tree(inventory, files)
            err.print(f"--render: {inventory}: {len(changed)} of {len(files)} files changed", markup=False)
        return inventory

    with reporting():
        deployment = _deployment(
            estate,
            output,
            DeployOptions(playbook, limit, check, tuple(tags or ()), tuple(skip_tags or ())),
            lab=lab,
            vault=vault,
            vault_password_file=vault_password_file,
            certificates=certificates,
            ssh_user=ssh_user,
            inventory_for=current,
        )
        name = deployment.loaded.estate.name
        try:
            summary = _run(deployment, f"deploying {name} with {playbook}")
        except RunFailed as failure:
            _print_run(failure.summary, json_output)
            raise
        _print_run(summary, json_output)
        if not json_output:
            # scripts/benchmark-deploy.py and tests/test_lab.py read this line.
            out.print(
                f"{playbook} on {name}: {summary.status}, {summary.changed} changed; record in {summary.record}", markup=False
            )


@app.command("plan")
def plan_command(
    estate: EstateOption = DEFAULT_ESTATE,
    output: OutputOption = None,
    lab: LabOption = False,
    playbook: PlaybookOption = "site.yml",
    limit: LimitOption = None,
    tags: TagsOption = None,
    skip_tags: SkipTagsOption = None,
    vault: VaultOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    certificates: CertificatesOption = None,
    ssh_user: SshUserOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help='Print {"render": <diff>, "hosts": {<host>: [{"task", "diff"}]}} instead.')
    ] = False,
) -> None:
    """Show what a deploy would change, changing nothing: the render's diff, then each task's
    diff per host from the deploy run in Ansible's check mode against the new render. Secrets
    are masked. Exits 0 whether or not anything would change."""
    from hermes.deploy import DeployOptions
    from hermes.plan import Mask, Plan, TaskChange, task_change, vault_secrets
    from hermes.precheck import read_target_vault
    from hermes.runner import RunFailed

    with reporting(), TemporaryDirectory(prefix="hermes-plan-") as scratch:

        def new_render(inventory: Path, files: dict[str, str], render_diff: str) -> Path:
            # Checked against what a deploy would deploy; the committed render is left as it is.
            if not render_diff:
                return inventory
            fresh = Path(scratch) / inventory.name
            write_tree(fresh, files)
            return fresh

        deployment = _deployment(
            estate,
            output,
            DeployOptions(playbook, limit, check=True, tags=tuple(tags or ()), skip_tags=tuple(skip_tags or ())),
            lab=lab,
            vault=vault,
            vault_password_file=vault_password_file,
            certificates=certificates,
            ssh_user=ssh_user,
            inventory_for=new_render,
        )
        mask = Mask.of(vault_secrets(read_target_vault(deployment.target)))
        changes: list[TaskChange] = []

        def collect(event: Mapping[str, Any]) -> None:
            if change := task_change(event):
                changes.append(change)

        name = deployment.loaded.estate.name
        failed: RunFailed | None = None
        try:
            summary = _run(deployment, f"planning {name} with {playbook} (check mode)", collect)
        except RunFailed as failure:
            # What it found before it failed is shown too.
            failed, summary = failure, failure.summary
        _print_plan(deployment, Plan.of(deployment.render_diff, changes, summary.hosts).masked(mask), summary, json_output)
        if failed is not None:
            # Its message ends with Ansible's last lines of output, which may hold diffs.
            raise RunFailed(mask(str(failed)), summary) from None
        if not json_output:
            out.print(
                f"{playbook} on {name} in check mode: {summary.changed} changed, nothing deployed; record in {summary.record}",
                markup=False,
            )


@app.command("check")
def check_command(
    estate: EstateOption = DEFAULT_ESTATE,
    lab: LabOption = False,
    vault: VaultOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    certificates: CertificatesOption = None,
    ssh_user: Annotated[str, typer.Option(help="Without --lab: the SSH login on the store hosts.")] = "root",
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Probe the live estate as its users do: DNS, mail in through each MX, submission, IMAP and
    POP through each proxy for a user on each pair, replication, webmail, a list post. Exit 1 if
    any probe fails."""
    import ssl

    from hermes.check import Context, Result, document, plan_probes, probe_users, run
    from hermes.precheck import read_target_vault
    from hermes.store.runner import PodmanRunner, SshRunner

    with reporting():
        # The store hosts' SSH login is check's own (store status asks as it), not a deploy's.
        site = _site_paths(lab, vault, vault_password_file, certificates, None)
        loaded = load_estate(estate)
        secrets = read_target_vault(_target(loaded, site, vault_password_file, None))
        ca = _ca_certificate(site)
        runner: CommandRunner = (
            PodmanRunner() if site is None else SshRunner({n: str(a) for n, a in loaded.addresses.items()}, user=ssh_user)
        )
        users = probe_users(loaded, secrets.get("vault_hermes_user_passwords") or {})
        if not users.by_pair:
            raise UsageError("no account with a password in the vault is placed on any store pair: nothing to log in as")
        context = Context(loaded, users, ssl.create_default_context(cafile=str(ca)), runner)
        probes = plan_probes(loaded, users)
        table = Table("probe", "target", "result", "seconds", "detail", title=f"hermesctl check: {loaded.estate.name}")

        def show(result: Result) -> None:
            mark = Text("pass", style="green") if result.ok else Text("FAIL", style="bold red")
            table.add_row(result.probe, result.target, mark, f"{result.seconds:.2f}", Text(result.detail))

        if json_output:
            results = run(context, probes, lambda _result: None)
            out.print(json.dumps(document(results), indent=2), markup=False)
        else:
            from rich.live import Live

            with Live(table, console=out, transient=False):
                results = run(context, probes, show)
            out.line()
            failed = [r for r in results if not r.ok]
            out.print(f"{len(results) - len(failed)} of {len(results)} probes passed", markup=False)
        if any(not r.ok for r in results):
            raise typer.Exit(ExitCode.PROBE_FAILED)


@mailbox_app.command("merge")
def merge_command(
    user: Annotated[str, typer.Argument(help="The account, by its user name.", show_default=False)],
    copies: Annotated[
        list[str],
        typer.Option(
            "--copy",
            help="A folder (tree) of the account holding a recovered copy, as the user names it (e.g. 'INBOX.Restored');"
            " repeatable, merged in this order.",
            show_default=False,
        ),
    ],
    into: Annotated[str, typer.Option("--into", help="The live folder (tree) the copies stand for.")] = "INBOX",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be copied; change nothing.")] = False,
    estate: EstateOption = DEFAULT_ESTATE,
    lab: LabOption = False,
    vault: VaultOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    certificates: CertificatesOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the plan and its outcome as JSON.")] = False,
) -> None:
    """Merge recovered copies of a user's folders into the live folders without duplicates: a
    message is copied in (keeping its flags and internal date) unless the folder already holds
    one with its content GUID or Message-ID; each folder is backed up before it receives any."""
    import ssl
    from datetime import UTC, datetime

    from hermes.credentials import admin_scope
    from hermes.mailbox.account import AccountAccess, merge
    from hermes.mailbox.cli import merge_document, merge_summary, merge_table
    from hermes.precheck import read_target_vault
    from hermes.store.recover import ADMIN_PASSWORDS_SECRET, ADMIN_USER

    with reporting():
        site = _site_paths(lab, vault, vault_password_file, certificates, None)
        loaded = load_estate(estate)
        pair_name = loaded.placement.get(user)
        if pair_name is None:
            raise UsageError(f"{user}: no such account in the estate's accounts file")
        ca = _ca_certificate(site)
        pair = next(p for p in loaded.estate.services.store_pairs if p.name == pair_name)
        secrets = read_target_vault(_target(loaded, site, vault_password_file, None))
        password = (secrets.get(ADMIN_PASSWORDS_SECRET) or {}).get(admin_scope(loaded.estate, pair.live))
        if not password:
            raise UsageError(f"the vault has no administrator password for {pair.name} ({ADMIN_PASSWORDS_SECRET})")
        ports = loaded.estate.policies.ports
        implicit = ports.imaps.enabled
        access = AccountAccess(
            host=pair.live,
            address=str(loaded.addresses[pair.live]),
            port=(ports.imaps if implicit else ports.imap).port,
            implicit_tls=implicit,
            tls=ssl.create_default_context(cafile=str(ca)),
            admin=ADMIN_USER,
            admin_password=password,
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        result = merge(access, user, target=into, copies=copies, stamp=stamp, dry_run=dry_run)
        if json_output:
            out.print(json.dumps(merge_document(result), indent=2), markup=False)
        else:
            out.print(merge_table(result))
            out.print(merge_summary(result), markup=False)
        for line in result.missing:
            err.print(f"missing after the merge: {line}", style="bold red", markup=False)
        if result.missing:
            raise typer.Exit(ExitCode.OUT_OF_SYNC)


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


def _print_plan(deployment: _Deployment, plan: Plan, summary: RunSummary, as_json: bool) -> None:
    """A plan on stdout: as JSON, or the render's diff, each host's changing tasks with their
    diffs, and a table of how many tasks would change per host."""
    if as_json:
        out.print(plan.to_json(), markup=False, emoji=False, end="")
        return
    if plan.render:
        out.print(f"{deployment.committed} is stale; deploy --render would write this render:", style="bold", markup=False)
        out.print(plan.render, markup=False, emoji=False, end="")
    else:
        out.print(f"{deployment.committed} is up to date", markup=False)
    for host, changes in plan.hosts.items():
        for change in changes:
            out.print()
            out.print(f"{host}: {change.task}", style="bold", markup=False, emoji=False)
            out.print(change.diff or "(would change; no diff shown)\n", markup=False, emoji=False, end="")
    out.print()
    title = f"{summary.subject.playbook} on {summary.subject.estate}, check mode: {summary.status}"
    table = Table("host", "tasks changing", "with a diff", title=Text(title))
    for host, changes in plan.hosts.items():
        # Ansible's count: it has the tasks that show no diff (no_log, diff: false) too.
        counts = summary.hosts.get(host) or Counts(changed=len(changes))
        table.add_row(Text(host), _count(counts, "changed"), Text(str(sum(1 for change in changes if change.diff))))
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


def _ca_certificate(site: tuple[Path, Path] | None) -> Path:
    """The CA that signed the hosts' certificates: the lab's, or a real estate's; UsageError if absent."""
    ca = (LAB_STATE / "pki" if site is None else site[1]) / "ca.crt"
    if not ca.is_file():
        raise UsageError(f"no CA certificate at {ca}: run hermesctl lab up first")
    return ca


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _keep(directory: Path, started: str, document: Mapping[str, Any]) -> Path:
    """Write an operation's record (git-ignored, beside the deploys' records); its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{started.replace(':', '')}-{document['operation']}-{document['pair']}.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _write_render(inventory: Path, files: dict[str, str], render_diff: str) -> Path:
    """The new render written, whatever was there (a switchover's flip)."""
    if render_diff:
        write_tree(inventory, files)
    return inventory


def _operation_table(report: PairOperation) -> Table:
    plan = report.plan
    title = f"{plan.operation.capitalize()} of {plan.pair}: {plan.new_live} is live"
    if plan.fenced is not None:
        title += f", {plan.fenced} fenced"
    table = Table("step", "seconds", "what", title=title)
    for s in report.steps:
        table.add_row(s.name, f"{s.seconds:.1f}", Text(s.detail))  # not markup: "mail[a-z]"
    held_for = f"held {report.held_seconds:.1f} s (logins refused, mail queued)"
    table.caption = f"{held_for}; {report.queued} message(s) were queued"
    return table


def _missing_table(title: str, deliveries: Sequence[Delivery]) -> Table:
    table = Table("MX", "logged", "queue id", "recipient", "Message-ID", title=title)
    for d in deliveries:
        table.add_row(d.mx, d.at, d.exim_id, d.recipient, Text(d.message_id or "-"))
    return table


@dataclass(frozen=True)
class _OperationTarget:
    """Where a pair operation runs: the estate, its render, how to reach and deploy its hosts."""

    estate: Path
    output: Path | None
    lab: bool
    vault: Path | None
    vault_password_file: Path | None
    certificates: Path | None
    ssh_user: str | None


def _operation_record(loaded: LoadedEstate, committed: Path, plan: FlipPlan, estate: Path) -> tuple[dict[str, str], Path]:
    """Who runs an operation, from which files (its record's head), and where records are kept."""
    from hermes.deploy import DeployOptions
    from hermes.summary import run_subject

    subject = run_subject(loaded, committed, DeployOptions(limit=plan.limit))
    who = {"who": subject.who, "controller": subject.controller, "estate_file": subject.estate_file.sha256}
    return who, runs_dir(loaded.estate.name, estate_home(estate.resolve())) / "operations"


@dataclass(frozen=True)
class _Operation:
    """What a pair operation is handed: the estate, its hosts, the flip's deploy, where to
    report each step, and the target's vault (read when asked)."""

    loaded: LoadedEstate
    runner: CommandRunner
    deploy: Deploy
    progress: Callable[[Step], None]
    vault: Callable[[], Mapping[str, Any]]


def _operate(
    target: _OperationTarget,
    pair: str,
    plan_for: Callable[[LoadedEstate, str], FlipPlan],
    operate: Callable[[_Operation], PairOperation],
    *,
    json_output: bool,
    quiet: bool = False,
    hosts_checked_first: bool = True,
) -> PairOperation:
    """A pair operation with deploy's plumbing: the committed render must be current, what the
    flip's deploy needs is checked before anything is touched, the flip records the plan's
    members in the estate file and renders, and the operation leaves a record, done or stopped.
    ``quiet``: the steps and the record only (the rolling upgrade reports its switchovers itself).
    ``hosts_checked_first``: the hosts' own checks pass before the operation starts; else the
    confirming deploy runs them, after the release."""
    from hermes.deploy import DeployOptions
    from hermes.precheck import read_target_vault
    from hermes.store.cli import store_runner
    from hermes.store.operation import PRECHECK_TAGS, DeployNotStarted, OperationError, document, record_pair

    estate, output = target.estate, target.output

    def deployment(options: DeployOptions) -> _Deployment:
        return _deployment(
            estate,
            output,
            options,
            lab=target.lab,
            vault=target.vault,
            vault_password_file=target.vault_password_file,
            certificates=target.certificates,
            ssh_user=target.ssh_user,
            inventory_for=_write_render,
        )

    def flip(plan: FlipPlan, limit: str, tags: tuple[str, ...], skip_tags: tuple[str, ...]) -> dict[str, int]:
        original = estate.read_bytes()
        try:
            record_pair(estate, plan.pair, live=plan.new_live, fenced=plan.fenced)
            ready = deployment(DeployOptions("site.yml", limit, tags=tags, skip_tags=skip_tags))
        except HermesError as error:
            # Nothing ran: the estate file and its render as they were.
            estate.write_bytes(original)
            _, inventory, files = _render(estate, output)
            write_tree(inventory, files)
            raise DeployNotStarted(str(error)) from error
        done = _run(ready, f"{plan.operation} of {plan.pair} to {plan.new_live} ({', '.join(tags)})")
        flip_records.append(done.record)
        return {host: counts.changed for host, counts in done.hosts.items()}

    def progress(step: Step) -> None:
        if not json_output:
            err.print(f"{step.name}: {step.detail} ({step.seconds:.1f} s)", markup=False)

    flip_records: list[str] = []
    loaded, committed, files = _render(estate, output)
    plan = plan_for(loaded, pair)
    if diff(committed, files):
        raise StaleRenderError(f"{committed} is stale: render and deploy the estate before a {plan.operation}")
    # What the flip's deploy needs (vault, certificates, SSH, the controller's prechecks and
    # the hosts' own) is checked now, before the pair is held: the flip skips the latter. But
    # a failover's users are out from the moment the member died, and the hosts' checks are an
    # Ansible run as long as the flip's (docs/store.md, Failover): there the confirming deploy,
    # which runs them first on every host it touches, checks the hosts once the pair serves.
    checked = deployment(DeployOptions("site.yml", plan.limit, tags=PRECHECK_TAGS))
    if hosts_checked_first:
        _run(checked, f"checking {plan.limit}")
    runner = store_runner({n: str(a) for n, a in loaded.addresses.items()}, lab=target.lab, ssh_user=target.ssh_user or "root")
    who, record = _operation_record(loaded, committed, plan, estate)
    started = _now()
    try:
        report = operate(_Operation(loaded, runner, flip, progress, lambda: read_target_vault(checked.target)))
    except HermesError as error:
        steps = error.steps if isinstance(error, OperationError) else ()
        held = isinstance(error, OperationError) and error.held
        outcome = {"result": "stopped", "error": str(error), "held": held, "flip_records": flip_records}
        _keep(record, started, document(plan, steps, **who, started=started, finished=_now(), **outcome))
        raise
    result = document(plan, report.steps, **who, started=started, finished=_now(), **report.outcome(), flip_records=flip_records)
    err.print(f"record: {_keep(record, started, result)}", markup=False)
    if quiet:
        return report
    if json_output:
        out.print(json.dumps(result, indent=2, sort_keys=True), markup=False)
    else:
        out.print(_operation_table(report))
    return report


# Registered here, not in hermes.store.cli: the pair operations deploy, with deploy's own plumbing.
@store_app.command("switchover")
def switchover_command(
    pair: Annotated[str, typer.Argument(help="The store pair, by its name in the estate.", show_default=False)],
    estate: EstateOption = DEFAULT_ESTATE,
    output: OutputOption = None,
    lab: LabOption = False,
    vault: VaultOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    certificates: CertificatesOption = None,
    ssh_user: SshUserOption = None,
    max_lag: Annotated[
        float, typer.Option(help="Refuse to start when the spare or the backup server is further behind than this (seconds).")
    ] = 30.0,
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for replication to catch up, after the hold and after the flip.")
    ] = 120.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the steps and figures as JSON.")] = False,
) -> None:
    """Planned switchover: the pair's spare becomes live and the live member the spare. Gated on
    replication (at most --max-lag behind, no split mailbox); the pair is held meanwhile (mail queued, logins refused
    temporarily), the old live member stopped and checked, the estate file and render
    updated, the pair, MX hosts and proxies flipped (the store_live tasks, no provisioning),
    the new direction checked, the pair released, and a deploy of those hosts and the DNS
    hosts confirms the flip (and moves the mail[a-z] names). See docs/store.md."""
    from hermes.store.switchover import switch, switchover_plan

    target = _OperationTarget(estate, output, lab, vault, vault_password_file, certificates, ssh_user)
    with reporting():
        report = _operate(
            target,
            pair,
            switchover_plan,
            lambda o: switch(
                o.loaded, pair, o.runner, o.deploy, max_lag=max_lag, drain_timeout=drain_timeout, on_step=o.progress
            ),
            json_output=json_output,
        )
    if report.waiting:
        # Switched over, but an MX still has the pair's mail queued: `store release` again.
        raise typer.Exit(ExitCode.OUT_OF_SYNC)


@store_app.command("failover")
def failover_command(
    pair: Annotated[str, typer.Argument(help="The store pair, by its name in the estate.", show_default=False)],
    estate: EstateOption = DEFAULT_ESTATE,
    output: OutputOption = None,
    lab: LabOption = False,
    fenced: Annotated[
        bool,
        typer.Option(
            "--fenced",
            help="Without --lab: you have powered the live member off (its BMC) and it cannot come back by itself "
            "(docs/store.md, Failover). Required on a real estate.",
        ),
    ] = False,
    vault: VaultOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    certificates: CertificatesOption = None,
    ssh_user: SshUserOption = None,
    sync_timeout: Annotated[
        float, typer.Option(help="Seconds the new live member and the backup server have to agree after the resync.")
    ] = 120.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the steps, figures and missing deliveries as JSON.")] = False,
) -> None:
    """Unplanned failover: the live member is lost (it does not answer, or its Cyrus is down),
    and the spare becomes live with what it has. The old member is fenced (the lab: its
    container stopped and a fence file written into it; a real estate: you power it off and say
    --fenced), the pair held, the estate file and render updated (live and fenced), the spare,
    backup server, MX hosts and proxies flipped, the users the backup server and the new live
    member disagree on copied, the pair released; then the MX logs are read for deliveries to
    the old member that the live copy lacks, and a deploy confirms the flip. Exit 1 when some
    may be missing or mail is still queued. See docs/store.md."""
    from hermes.store.failover import Failover, fail_over, failover_plan

    target = _OperationTarget(estate, output, lab, vault, vault_password_file, certificates, ssh_user)

    def operate(o: _Operation) -> Failover:
        return fail_over(o.loaded, pair, o.runner, o.deploy, _fencer(o.runner), sync_timeout=sync_timeout, on_step=o.progress)

    with reporting():
        if not lab and not fenced:
            raise UsageError("--fenced: on a real estate, power the live member off first and say so (docs/store.md, Failover)")
        report = _operate(target, pair, failover_plan, operate, json_output=json_output, hosts_checked_first=False)
    assert isinstance(report, Failover)
    if report.missing and not json_output:
        out.print(_missing_table(f"Delivered to {report.plan.old_live}, not in the live copy", report.missing))
    if report.missing or report.waiting:
        raise typer.Exit(ExitCode.OUT_OF_SYNC)


@store_app.command("reattach")
def reattach_command(
    pair: Annotated[str, typer.Argument(help="The store pair, by its name in the estate.", show_default=False)],
    estate: EstateOption = DEFAULT_ESTATE,
    output: OutputOption = None,
    lab: LabOption = False,
    vault: VaultOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    certificates: CertificatesOption = None,
    ssh_user: SshUserOption = None,
    window_hours: Annotated[
        float,
        typer.Option(help="Recover the set-aside messages of this many hours (below the delayed-expunge retention)."),
    ] = 24.0,
    sync_timeout: Annotated[float, typer.Option(help="Seconds the pair has to come into sync after the resync.")] = 300.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the steps, figures and recovered deliveries as JSON.")
    ] = False,
) -> None:
    """Reattach the member a failover fenced as the pair's spare. It is brought up (the lab:
    its container started; a real estate: you power it on) with Cyrus still kept down by its
    fence file; its Cyrus state is set aside (kept on it) and replaced by an empty one, and
    the set-aside messages the live copy lacks are listed; Cyrus starts on it; the pair is
    held while the estate file drops `fenced` and both members, the backup server, the MX
    hosts and the proxies are deployed (it gets a spare's configuration); the pair is released,
    every user copied to it, and the listed messages appended to the live copy with their
    internal dates (never renumbering the live copy). Then the pair must be in sync, and every
    delivery to it in the MX logs in the live copy. Exit 1 when some is not. See docs/store.md."""
    from hermes.store.reattach import Reattach, reattach, reattach_plan
    from hermes.store.recover import ADMIN_PASSWORDS_SECRET

    target = _OperationTarget(estate, output, lab, vault, vault_password_file, certificates, ssh_user)

    def operate(o: _Operation) -> Reattach:
        passwords = o.vault().get(ADMIN_PASSWORDS_SECRET)
        password = passwords.get(pair) if isinstance(passwords, dict) else None
        if not isinstance(password, str) or not password:
            raise PrecheckError(
                [
                    Problem(
                        f"{ADMIN_PASSWORDS_SECRET}.{pair}",
                        "missing from the vault (the recovery appends as the pair's Cyrus admin)",
                    )
                ]
            )
        return reattach(
            o.loaded,
            pair,
            o.runner,
            o.deploy,
            _fencer(o.runner),
            admin_password=password,
            window_hours=window_hours,
            sync_timeout=sync_timeout,
            on_step=o.progress,
        )

    with reporting():
        report = _operate(target, pair, reattach_plan, operate, json_output=json_output)
    assert isinstance(report, Reattach)
    if report.not_recovered and not json_output:
        out.print(_missing_table(f"Delivered to {report.plan.old_live}, still not in the live copy", report.not_recovered))
    if report.not_recovered or report.waiting:
        raise typer.Exit(ExitCode.OUT_OF_SYNC)


@store_app.command("upgrade")
def upgrade_command(
    pairs: Annotated[
        list[str] | None,
        typer.Argument(help="The store pairs, in this order (default: every pair of the estate).", show_default=False),
    ] = None,
    estate: EstateOption = DEFAULT_ESTATE,
    output: OutputOption = None,
    lab: LabOption = False,
    vault: VaultOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    certificates: CertificatesOption = None,
    ssh_user: SshUserOption = None,
    reboot: Annotated[
        bool, typer.Option("--reboot", help="Reboot each member after its upgrade (else only when the upgrade needs it).")
    ] = False,
    switch_back: Annotated[
        bool, typer.Option("--switch-back", help="Switch each pair back to the member that was live before.")
    ] = False,
    retries: Annotated[int, typer.Option(help="Health checks a gate makes before the run stops.")] = 30,
    delay: Annotated[float, typer.Option(help="Seconds between a gate's health checks.")] = 5.0,
    fresh: Annotated[bool, typer.Option("--fresh", help="Forget an unfinished run's progress and start over.")] = False,
    max_lag: Annotated[float, typer.Option(help="Replication lag (seconds) a gate and each switchover accept at most.")] = 30.0,
    drain_timeout: Annotated[float, typer.Option(help="A switchover's --drain-timeout.")] = 120.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the steps and each switchover's figures as JSON.")] = False,
) -> None:
    """Rolling upgrade of the store pairs, one at a time: a health gate (--retries checks
    --delay seconds apart: no member fenced, the pair held nowhere, Cyrus active on both,
    replication at most --max-lag behind), the spare
    upgraded (playbooks/rolling_store_upgrade.yml) and rebooted when asked or needed, the gate
    again, a switchover, the old live member upgraded the same way, the gate again, optionally
    a switchover back, and a last gate. A live member is never upgraded. A failure stops the
    run with the pair serving; running the same command again resumes where it stopped. See
    docs/store.md."""
    from hermes.deploy import DeployOptions
    from hermes.store.check import pair_specs
    from hermes.store.cli import store_runner
    from hermes.store.upgrade import PLAYBOOK, Budget, Progress, UpgradeError, rolling_upgrade
    from hermes.summary import run_subject

    target = _OperationTarget(estate, output, lab, vault, vault_password_file, certificates, ssh_user)

    def progress(step: Step) -> None:
        if not json_output:
            err.print(f"{step.name}: {step.detail} ({step.seconds:.1f} s)", markup=False)

    with reporting():
        budget = Budget(retries, delay, max_lag)
        loaded, committed, files = _render(estate, output)
        if diff(committed, files):
            raise StaleRenderError(f"{committed} is stale: render and deploy the estate before an upgrade")
        names = list(pairs or [p.name for p in loaded.estate.services.store_pairs])
        pair_specs(loaded, names)  # refuses a pair the estate does not have
        runner = store_runner({n: str(a) for n, a in loaded.addresses.items()}, lab=lab, ssh_user=ssh_user or "root")
        members = _UpgradeMembers(target, _fencer(runner), max_lag=max_lag, drain_timeout=drain_timeout)
        records = runs_dir(loaded.estate.name, estate_home(estate.resolve())) / "operations"
        state = Progress.open(records / "upgrade-progress.json", names, switch_back=switch_back, fresh=fresh)
        if state.resumed:
            err.print(f"resuming the upgrade kept in {state.path}", markup=False)
        subject = run_subject(loaded, committed, DeployOptions(PLAYBOOK))
        started = _now()
        head = {
            "operation": "upgrade",
            "pair": "-".join(names),
            "pairs": names,
            "who": subject.who,
            "controller": subject.controller,
            "estate_file": subject.estate_file.sha256,
            "started": started,
        }
        try:
            report = rolling_upgrade(members, runner, state, budget, reboot=reboot, on_step=progress)
        except HermesError as error:
            steps = error.steps if isinstance(error, UpgradeError) else ()
            outcome = {"finished": _now(), "result": "stopped", "error": str(error), "steps": _step_rows(steps)}
            _keep(records, started, {**head, **outcome})
            raise
        result = {
            **head,
            "finished": _now(),
            "result": "done",
            "resumed": report.resumed,
            "skipped": report.skipped,
            "steps": _step_rows(report.steps),
            "switchovers": [{"pair": s.plan.pair, "live": s.plan.new_live, **s.outcome()} for s in report.switchovers],
        }
        err.print(f"record: {_keep(records, started, result)}", markup=False)
    if json_output:
        out.print(json.dumps(result, indent=2, sort_keys=True), markup=False)
        return
    table = Table(title=f"Rolling upgrade of {', '.join(names)}" + (" (resumed)" if report.resumed else ""))
    for column in ("step", "seconds", "detail"):
        table.add_column(column)
    for step in report.steps:
        table.add_row(step.name, f"{step.seconds:.1f}", step.detail)
    out.print(table)


def _step_rows(steps: Sequence[Step]) -> list[dict[str, object]]:
    return [{"step": s.name, "seconds": s.seconds, "detail": s.detail} for s in steps]


class _UpgradeMembers:
    """What the rolling upgrade does to the estate's hosts, with deploy's plumbing (hermes.store.upgrade.Members)."""

    def __init__(self, target: _OperationTarget, fencer: Fencer, *, max_lag: float, drain_timeout: float) -> None:
        self.target, self.fencer = target, fencer
        self.max_lag, self.drain_timeout = max_lag, drain_timeout

    def load(self) -> LoadedEstate:
        return load_estate(self.target.estate)

    def upgrade(self, host: str) -> str:
        from hermes.deploy import DeployOptions
        from hermes.store.upgrade import PLAYBOOK

        def current(inventory: Path, files: dict[str, str], render_diff: str) -> Path:
            if render_diff:
                raise StaleRenderError(f"{inventory} is stale: render and deploy the estate before an upgrade")
            return inventory

        t = self.target
        ready = _deployment(
            t.estate,
            t.output,
            DeployOptions(PLAYBOOK, host),
            lab=t.lab,
            vault=t.vault,
            vault_password_file=t.vault_password_file,
            certificates=t.certificates,
            ssh_user=t.ssh_user,
            inventory_for=current,
        )
        done = _run(ready, f"upgrading {host}")
        return f"{PLAYBOOK}: {done.changed} task(s) changed"

    def reboot(self, host: str) -> str:
        return self.fencer.reboot(host)

    def switchover(self, pair: str) -> PairOperation:
        from hermes.store.switchover import switch, switchover_plan

        def operate(o: _Operation) -> PairOperation:
            return switch(
                o.loaded, pair, o.runner, o.deploy, max_lag=self.max_lag, drain_timeout=self.drain_timeout, on_step=o.progress
            )

        return _operate(self.target, pair, switchover_plan, operate, json_output=False, quiet=True)


def _fencer(runner: CommandRunner) -> Fencer:
    """The lab's containers are fenced by podman; a real estate's hosts by their operator, and from here if they answer."""
    from hermes.store.fence import OperatorFencer, PodmanFencer
    from hermes.store.runner import PodmanRunner

    return PodmanFencer() if isinstance(runner, PodmanRunner) else OperatorFencer(runner)


def main() -> None:
    app()
