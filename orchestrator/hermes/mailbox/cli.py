"""``hermesctl mailbox``: what an operator does to one user's mailboxes, and how it is shown.

Registered by the main CLI with ``app.add_typer(mailbox_app, name="mailbox")``; the commands
that need the estate's vault are defined there, with the other commands that do.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from hermes.mailbox.account import MergeResult

mailbox_app = typer.Typer(
    help="Users' mailboxes: merging recovered copies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@mailbox_app.callback()
def mailbox() -> None:
    """Users' mailboxes: merging recovered copies."""


def merge_document(result: MergeResult) -> dict[str, Any]:
    """The JSON form of `mailbox merge`."""
    plan = result.plan
    return {
        "user": plan.user,
        "target": plan.target,
        "copies": list(plan.copies),
        "applied": result.applied,
        "backup_root": plan.backup_root if plan.touched and result.applied else None,
        "copied": plan.copied,
        "quota_needed": plan.quota_needed,
        "folders": [
            {
                "target": f.target,
                "exists": f.exists,
                "kept": f.kept,
                "copied": {name: len(uids) for name, uids in f.copies},
                "duplicates": f.duplicates,
                "deleted": f.deleted,
                "backup": f.backup,
            }
            for f in plan.folders
        ],
        "missing": list(result.missing),
    }


def merge_table(result: MergeResult) -> Table:
    plan = result.plan
    verb = "copied" if result.applied else "to copy"
    table = Table("folder", "now", verb, "from", "duplicates", "deleted, left out", "backup", title=f"merge for {plan.user}")
    for f in plan.folders:
        table.add_row(
            f.target if f.exists else f"{f.target} (new)",
            str(f.kept),
            str(f.copied),
            ", ".join(f"{name} ({len(uids)})" for name, uids in f.copies) or "-",
            str(f.duplicates),
            str(f.deleted),
            f.backup or "-",
        )
    return table


def merge_summary(result: MergeResult) -> str:
    plan = result.plan
    folders = len(plan.touched)
    if not plan.touched:
        return f"nothing to merge: every message of {', '.join(plan.copies)} is in {plan.target} already"
    if not result.applied:
        return f"dry run: would copy {plan.copied} message(s) into {folders} folder(s); nothing was changed"
    return f"copied {plan.copied} message(s) into {folders} folder(s); each folder as it was is under {plan.backup_root!r}"
