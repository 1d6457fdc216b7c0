"""``hermesctl store``: the message store's replication state, per pair.

Registered by the main CLI with ``app.add_typer(store_app, name="store")``. Commands parse
options and call :mod:`hermes.store.check` at once; errors are reported by
hermes.console.reporting, as for every command.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from hermes.console import EstateOption, err, out, reporting
from hermes.errors import ExitCode
from hermes.loader import load_estate
from hermes.paths import DEFAULT_ESTATE
from hermes.store.check import Agreement, ChannelStatus, MailboxComparison, PairStatus, check_pairs, pair_specs
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


@store_app.command("status")
def status(
    *,
    estate: EstateOption = DEFAULT_ESTATE,
    pair: Annotated[list[str] | None, typer.Option("--pair", "-p", help="Only this pair (repeatable).")] = None,
    lab: Annotated[bool, typer.Option("--lab", help="Reach the hosts as the local lab's containers (podman exec).")] = False,
    ssh_user: Annotated[str, typer.Option(help="Without --lab: the ssh login on the hosts (then runuser -u cyrus).")] = "root",
    json_output: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    problems_only: Annotated[bool, typer.Option("--problems", help="List only the mailboxes that disagree.")] = False,
) -> None:
    """Per pair: is replication caught up (no pending sync logs), and does every mailbox
    agree (unique id, UIDVALIDITY, last UID, messages, highest modseq) between the live
    member and its spare and backup? Exit 1 when a pair is not in sync, 5 when a host cannot be asked."""
    with reporting():
        loaded = load_estate(estate)
        specs = pair_specs(loaded, pair or [])
        addresses = {name: str(address) for name, address in loaded.addresses.items()}
        runner: CommandRunner = PodmanRunner() if lab else SshRunner(addresses, user=ssh_user)
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
