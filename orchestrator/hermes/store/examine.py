"""What a Cyrus host reports about itself, parsed: its mailboxes and its pending sync logs.

One command per host gathers everything (:data:`SNAPSHOT_COMMAND`, run as the cyrus
user): the host's clock, the files under the rolling replication log directory, and
``mbexamine`` of every mailbox, header only. Everything here is pure text -> data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from hermes.errors import StoreError

SYNC_DIRECTORY = "/var/lib/cyrus/sync"
MBEXAMINE = "/usr/lib/cyrus/bin/mbexamine"
_SYNC_MARK = "--- sync logs"
_MAILBOX_MARK = "--- mailboxes"

# `-s N` examines only message N: a number no mailbox reaches leaves the header alone.
# A receiver that never replicated has no sync directory. The exit status is mbexamine's.
SNAPSHOT_COMMAND: tuple[str, ...] = (
    "sh",
    "-c",
    f"date +%s.%N; echo '{_SYNC_MARK}';"
    f" if [ -d {SYNC_DIRECTORY} ]; then find {SYNC_DIRECTORY} -type f -printf '%P %s %T@\\n'; fi;"
    f" echo '{_MAILBOX_MARK}'; {MBEXAMINE} -s 2147483647 '*'",
)


@dataclass(frozen=True)
class MailboxState:
    """One mailbox as its index header describes it."""

    name: str
    unique_id: str
    uidvalidity: int
    last_uid: int
    messages: int
    highest_modseq: int
    last_append: int  # seconds since the epoch; 0 if nothing was ever appended

    @property
    def owner(self) -> str | None:
        """The user a mailbox belongs to (user.<name>..., DELETED.user.<name>...), if any."""
        parts = self.name.split(".")
        if parts[0] == "DELETED":
            parts = parts[1:]
        return parts[1] if len(parts) > 1 and parts[0] == "user" else None


@dataclass(frozen=True)
class SyncLogFile:
    """A file under the sync log directory: `log` (being appended to), `log-run` (being
    replayed) or a `log-<pid>` left by a failed run (to be replayed by hand)."""

    channel: str
    name: str
    size: int
    mtime: float

    @property
    def pending(self) -> bool:
        """Whether it holds work not yet replicated (an empty `log` holds none)."""
        return self.size > 0 or self.name != "log"


@dataclass(frozen=True)
class HostSnapshot:
    host: str
    taken_at: float  # the host's own clock, seconds since the epoch
    mailboxes: Mapping[str, MailboxState]
    sync_logs: tuple[SyncLogFile, ...]

    def pending(self, channel: str) -> tuple[SyncLogFile, ...]:
        return tuple(f for f in self.sync_logs if f.channel == channel and f.pending)


_EXAMINING = re.compile(r"^Examining (.+?)\.\.\.")
_FIELDS = {
    "unique_id": re.compile(r"^\s*Unique ID:\s*(\S+)", re.MULTILINE),
    "messages": re.compile(r"^\s*Number of Messages:\s*(\d+)", re.MULTILINE),
    "last_append": re.compile(r"^\s*Last Append Date:\s*\((\d+)\)", re.MULTILINE),
    "uidvalidity": re.compile(r"^\s*UIDValidity:\s*(\d+)", re.MULTILINE),
    "last_uid": re.compile(r"Last UID:\s*(\d+)", re.MULTILINE),
    "highest_modseq": re.compile(r"^\s*Highest Mod Sequence:\s*(\d+)", re.MULTILINE),
}


def parse_mbexamine(text: str) -> dict[str, MailboxState]:
    """mailbox name -> state, from `mbexamine` output (any number of mailboxes)."""
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = _EXAMINING.match(line)
        if match:
            blocks.append((match.group(1), []))
        elif blocks:
            blocks[-1][1].append(line)
    mailboxes: dict[str, MailboxState] = {}
    for name, lines in blocks:
        body = "\n".join(lines)
        values: dict[str, str] = {}
        for field, pattern in _FIELDS.items():
            found = pattern.search(body)
            if found is None:
                raise StoreError(f"mbexamine: no {field.replace('_', ' ')} for mailbox {name}")
            values[field] = found.group(1)
        mailboxes[name] = MailboxState(
            name=name,
            unique_id=values["unique_id"],
            uidvalidity=int(values["uidvalidity"]),
            last_uid=int(values["last_uid"]),
            messages=int(values["messages"]),
            highest_modseq=int(values["highest_modseq"]),
            last_append=int(values["last_append"]),
        )
    return mailboxes


def parse_sync_logs(text: str) -> tuple[SyncLogFile, ...]:
    """Files under the sync directory, from `find -printf '%P %s %T@\\n'` (path relative to it)."""
    files: list[SyncLogFile] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            path, size, mtime = line.rsplit(" ", 2)
            channel, _, name = path.rpartition("/")
            files.append(SyncLogFile(channel=channel or "", name=name, size=int(size), mtime=float(mtime)))
        except ValueError:
            raise StoreError(f"unreadable sync log listing line: {line!r}") from None
    return tuple(sorted(files, key=lambda f: (f.channel, f.name)))


def parse_snapshot(host: str, text: str) -> HostSnapshot:
    """The output of :data:`SNAPSHOT_COMMAND` on ``host``."""
    head, sync_mark, rest = text.partition(_SYNC_MARK + "\n")
    sync_text, mailbox_mark, mailbox_text = rest.partition(_MAILBOX_MARK + "\n")
    if not sync_mark or not mailbox_mark:
        raise StoreError(f"{host}: unexpected answer to the store snapshot command")
    try:
        taken_at = float(head.strip())
    except ValueError:
        raise StoreError(f"{host}: unreadable clock {head.strip()!r}") from None
    return HostSnapshot(host, taken_at, parse_mbexamine(mailbox_text), parse_sync_logs(sync_text))
