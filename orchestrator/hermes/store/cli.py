"""``hermesctl store``: the message store's replication state per pair, and holding a pair.

Registered by the main CLI with ``app.add_typer(store_app, name="store")``. Commands parse
options and call :mod:`hermes.store.check` at once; errors are reported by
hermes.console.reporting, as for every command.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hermes.console import EstateOption, err, out, reporting
from hermes.errors import ExitCode
from hermes.loader import load_estate
from hermes.paths import DEFAULT_ESTATE
from hermes.store.check import Agreement, ChannelStatus, MailboxComparison, PairStatus, check_pairs, pair_specs
from hermes.store.hold import HostHold, hold, hold_targets, release
from hermes.store.runner import CommandRunner, PodmanRunner, SshRunner

store_app = typer.Typer(
    help="The message store: Cyrus pairs and their replication.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@store_app.callback()
def store() -> None:
    """The message store: Cyrus pairs and their replication."""


def status_document(statuses: list[PairStatus]) -> dict[str, Any]:
    """The JSON form of `store status`: plain data, derived properties included."""

    def channel(c: ChannelStatus) -> dict[str, Any]:
        return {
            "channel": c.channel,
            "source": c.source,
            "target": c.target,
            "caught_up": c.caught_up,
            "in_sync": c.in_sync,
            "lag_seconds": c.lag_seconds,
            "pending_logs": [asdict(f) for f in c.pending_logs],
            "oldest_pending_age": c.oldest_pending_age,
            "mailboxes_agreeing": c.agreeing,
            "mailboxes": [
                {
                    "mailbox": m.mailbox,
                    "agreement": str(m.agreement),
                    "differences": list(m.differences),
                    "lag_seconds": m.lag_seconds,
                    "source": None if m.source is None else asdict(m.source),
                    "target": None if m.target is None else asdict(m.target),
                }
                for m in c.mailboxes
            ],
        }

    pairs = [
        {"pair": s.pair, "live": s.live, "in_sync": s.in_sync, "channels": [channel(c) for c in s.channels]} for s in statuses
    ]
    return {"in_sync": all(s.in_sync for s in statuses), "pairs": pairs}


def _both(m: MailboxComparison, field: str) -> str:
    mine = "-" if m.source is None else str(getattr(m.source, field))
    theirs = "-" if m.target is None else str(getattr(m.target, field))
    return mine if mine == theirs else f"[red]{mine} / {theirs}[/red]"


def _summary(c: ChannelStatus) -> str:
    state = "[green]caught up[/green]" if c.caught_up else f"[red]{len(c.pending_logs)} pending sync log(s)[/red]"
    agree = f"{c.agreeing}/{len(c.mailboxes)} mailboxes agree"
    if c.agreeing != len(c.mailboxes):
        agree = f"[red]{agree}[/red]"
    return f"{c.channel} → {c.target}: {state}, {agree}, lag {c.lag_seconds:.1f} s"


def status_table(status: PairStatus, *, problems_only: bool = False) -> Table:
    state = "[green]in sync[/green]" if status.in_sync else "[red]not in sync[/red]"
    table = Table(
        "channel",
        "mailbox",
        "state",
        "uidvalidity",
        "last uid",
        "messages",
        "modseq",
        "lag",
        title=f"Pair {status.pair} (live {status.live}): {state}",
        caption="\n".join(_summary(c) for c in status.channels),
        caption_justify="left",
    )
    for c in status.channels:
        for m in c.mailboxes:
            if problems_only and m.agreement is Agreement.AGREE:
                continue
            table.add_row(
                c.channel,
                m.mailbox,
                str(m.agreement) if m.agreement is Agreement.AGREE else f"[red]{m.agreement}[/red]",
                _both(m, "uidvalidity"),
                _both(m, "last_uid"),
                _both(m, "messages"),
                _both(m, "highest_modseq"),
                f"{m.lag_seconds:.0f} s" if m.lag_seconds else "",
            )
    return table


LabOption = Annotated[bool, typer.Option("--lab", help="Reach the hosts as the local lab's containers (podman exec).")]
SshUserOption = Annotated[str, typer.Option(help="Without --lab: the ssh login on the hosts (then runuser as needed).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
PairArgument = Annotated[str, typer.Argument(help="The store pair, by its name in the estate.", show_default=False)]


def store_runner(addresses: dict[str, str], *, lab: bool, ssh_user: str) -> CommandRunner:
    """The lab's containers (podman exec), or the hosts by ssh as ``ssh_user``."""
    return PodmanRunner() if lab else SshRunner(addresses, user=ssh_user)


@store_app.command("status")
def status(
    *,
    estate: EstateOption = DEFAULT_ESTATE,
    pair: Annotated[list[str] | None, typer.Option("--pair", "-p", help="Only this pair (repeatable).")] = None,
    lab: LabOption = False,
    ssh_user: SshUserOption = "root",
    json_output: JsonOption = False,
    problems_only: Annotated[bool, typer.Option("--problems", help="List only the mailboxes that disagree.")] = False,
) -> None:
    """Per pair: is replication caught up (no pending sync logs), and does every mailbox
    agree (unique id, UIDVALIDITY, last UID, messages, highest modseq) between the live
    member and its spare and backup? Exit 1 when a pair is not in sync, 5 when a host cannot be asked."""
    with reporting():
        loaded = load_estate(estate)
        specs = pair_specs(loaded, pair or [])
        addresses = {name: str(address) for name, address in loaded.addresses.items()}
        runner = store_runner(addresses, lab=lab, ssh_user=ssh_user)
        if json_output:
            statuses = check_pairs(specs, runner)
        else:
            with err.status(f"asking the store hosts of {loaded.estate.name}"):
                statuses = check_pairs(specs, runner)
    if json_output:
        out.print(json.dumps(status_document(statuses), indent=2, sort_keys=True), markup=False)
    else:
        for pair_status in statuses:
            out.print(status_table(pair_status, problems_only=problems_only))
    if not all(s.in_sync for s in statuses):
        raise typer.Exit(ExitCode.OUT_OF_SYNC)


def _flush_cells(r: HostHold) -> list[str]:
    if r.flush_error is not None:
        return ["?", "?", f"[red]failed: {r.flush_error}[/red]"]
    if r.queued_before is None:
        return ["", "", ""]
    after = str(r.queued_after) if not r.queued_after else f"[red]{r.queued_after}[/red]"
    return [str(r.queued_before), after, f"{r.flush_seconds:.1f} s"]


def hold_table(title: str, results: list[HostHold]) -> Table:
    flushed = any(r.flush_seconds is not None for r in results)
    columns = ["host", "service", "pairs held now", "changed"]
    if flushed:
        columns += ["queued before", "queued after", "flush"]
    table = Table(*columns, title=title)
    for r in results:
        row = [r.host, r.service, ", ".join(r.held) or "-", "yes" if r.changed else "no"]
        if flushed:
            row += _flush_cells(r)
        table.add_row(*row)
    return table


def _hold_or_release(pair: str, *, held: bool, estate: Path, lab: bool, ssh_user: str, json_output: bool) -> None:
    verb = "hold" if held else "release"
    with reporting():
        loaded = load_estate(estate)
        targets = hold_targets(loaded)
        targets.check(pair)
        runner = store_runner({n: str(a) for n, a in loaded.addresses.items()}, lab=lab, ssh_user=ssh_user)
        with err.status(f"{verb} of store pair {pair} on the MX hosts and proxies"):
            results = (hold if held else release)(runner, targets, pair)
    if json_output:
        document = {"pair": pair, "held": held, "hosts": [asdict(r) for r in results]}
        out.print(json.dumps(document, indent=2, sort_keys=True), markup=False)
    else:
        out.print(hold_table(f"Store pair {pair}: {'held' if held else 'released'}", results))
    if not held and any(r.waiting for r in results):
        raise typer.Exit(ExitCode.OUT_OF_SYNC)


@store_app.command("hold")
def hold_command(
    pair: PairArgument,
    *,
    estate: EstateOption = DEFAULT_ESTATE,
    lab: LabOption = False,
    ssh_user: SshUserOption = "root",
    json_output: JsonOption = False,
) -> None:
    """Hold a store pair: the MX hosts keep its users' mail queued (delivery deferred, never
    refused) and the proxies refuse its users' logins with a temporary failure and end their
    sessions, until `store release`. Idempotent; a deploy does not undo it."""
    _hold_or_release(pair, held=True, estate=estate, lab=lab, ssh_user=ssh_user, json_output=json_output)


@store_app.command("release")
def release_command(
    pair: PairArgument,
    *,
    estate: EstateOption = DEFAULT_ESTATE,
    lab: LabOption = False,
    ssh_user: SshUserOption = "root",
    json_output: JsonOption = False,
) -> None:
    """Release a held store pair: logins are let through again, and each MX delivers the
    mail it queued for the pair at once. Exit 1 when some of it is still queued afterwards, or
    an MX's forced queue run failed (that mail then waits for its retry time)."""
    _hold_or_release(pair, held=False, estate=estate, lab=lab, ssh_user=ssh_user, json_output=json_output)
