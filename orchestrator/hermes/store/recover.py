"""Recovering what only a fenced member had: its Cyrus state is set aside, and the messages in
it that the live copy lacks are appended to the live copy.

A fenced member's Cyrus state is moved aside whole (its configuration directory and every
partition, renamed in place: nothing is copied or lost) and replaced by empty ones, so it
comes back as an empty spare that replication fills from the live member. Nothing of it can
then reach the live copy by Cyrus's own reconciliation, which would give both ends' messages
new UIDs where the same UID holds different messages (clients would see the live copy's
messages expunged and again, and a POP client download them twice).

In the set-aside copy, each message is a file ``<uid>.`` in its mailbox's directory, named by
the mailbox's unique id (Cyrus's uuid layout); its SHA-1 is Cyrus's message GUID and its
modification time the message's internal date. A message whose GUID the live copy's mailbox
of the same unique id does not hold (among its files: expunged ones not yet purged count, as
they were there) is appended to it, keeping its internal date; its flags are not kept (in the
live copy it is a new message). Only messages newer than a window are looked at: older ones
replicated long before (the window must stay below the delayed-expunge retention, or a
message deleted and purged on the live member since would come back). A mailbox the live
member does not have at all is reported, not created.

:func:`parse_listing` and :func:`only_aside` are pure; the rest ask the hosts.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from hermes.credentials import ADMIN_PASSWORDS
from hermes.errors import StoreError
from hermes.store.check import snapshot
from hermes.store.hold import ROOT
from hermes.store.missing import CYRUS_BIN, QUEUE_ID, received_ids
from hermes.store.runner import CommandRunner

CONFIG_DIRECTORY = "/var/lib/cyrus"
# The live member's admin IMAP socket and admin (roles/cyrus_store: _cyrus_store_imap_socket,
# cyrus_store_admin_user; tests/test_store_recover.py checks they agree).
ADMIN_SOCKET = "/run/cyrus/socket/imap"
ADMIN_USER = "cyrus"
APPEND_PROGRAM = "/usr/local/sbin/cyrus-store-append"
ADMIN_PASSWORDS_SECRET = f"vault_hermes_{ADMIN_PASSWORDS}"  # pair -> password (hermes.credentials)

# Renames each directory to <dir>.fenced-<stamp> and makes an empty one, then Debian's
# makedirs lays out Cyrus's directories again; prints the stamp. Refuses to run while Cyrus
# runs. A configuration directory without a mailboxes database was set aside already (by a
# reattach that stopped before its flip): the newest copy is the one, and its stamp is printed.
_SET_ASIDE = r"""
set -e
stamp=$1; shift
if systemctl is-active --quiet cyrus-imapd.service; then echo "Cyrus is running" >&2; exit 1; fi
if [ ! -e "$1/mailboxes.db" ]; then
  previous=$(ls -d "$1".fenced-* 2>/dev/null | sort | tail -n 1)
  if [ -n "$previous" ]; then echo "${{previous##*.fenced-}}"; exit 0; fi
fi
for dir in "$@"; do
  mv "$dir" "$dir.fenced-$stamp"
  install -d -o cyrus -g mail -m 0750 "$dir"
done
{bin}/makedirs >/dev/null
echo "$stamp"
"""

# Messages (files <uid>.) newer than $1 under the other arguments: "<mtime> <path>" lines,
# then "<sha1>  <path>" lines.
_LIST = r"""
since=$1; shift
find "$@" -type f -name '[0-9]*.' -newermt "@$since" -printf '%T@ %p\n'
find "$@" -type f -name '[0-9]*.' -newermt "@$since" -print0 | xargs -0 -r sha1sum
"""

# The GUIDs of every message file of each named mailbox: "@mailbox <name>", then sha1sum lines.
_GUIDS = r"""
for mailbox in "$@"; do
  dir=$({bin}/mbpath "$mailbox") || exit 1
  echo "@mailbox $mailbox"
  find "$dir" -maxdepth 1 -type f -name '[0-9]*.' -print0 | xargs -0 -r sha1sum
done
"""

_RECEIVED_ID = re.compile(rf"\bid ({QUEUE_ID})".encode())
_READ = r"""for f in "$@"; do printf '%s ' "$f"; base64 -w 0 "$f"; echo; done"""


@dataclass(frozen=True)
class AsideMessage:
    """A message in a set-aside copy."""

    unique_id: str  # its mailbox's
    uid: int
    guid: str
    internaldate: int
    path: str


@dataclass(frozen=True)
class Recovery:
    """What a set-aside copy has that the live copy lacks."""

    to_append: tuple[tuple[str, AsideMessage], ...]  # (live mailbox, message)
    no_mailbox: tuple[AsideMessage, ...]  # in a mailbox the live member does not have


def set_aside(runner: CommandRunner, host: str, stamp: str, partitions: Sequence[str]) -> tuple[str, ...]:
    """Move ``host``'s Cyrus state aside (Cyrus must be down), or find it set aside already;
    the set-aside directories."""
    directories = [CONFIG_DIRECTORY, *partitions]
    answer = runner.run(host, ["sh", "-c", _SET_ASIDE.format(bin=CYRUS_BIN), "sh", stamp, *directories], user=ROOT)
    used = answer.strip().rpartition("\n")[2]
    if not re.fullmatch(r"\d{8}T\d{6}Z", used):
        raise StoreError(f"{host}: setting its Cyrus state aside answered {answer!r}")
    return tuple(f"{d}.fenced-{used}" for d in directories)


def parse_listing(listing: str) -> list[AsideMessage]:
    """:data:`_LIST`'s output: the messages, each with its mailbox's unique id and its GUID."""
    times: dict[str, int] = {}
    guids: dict[str, str] = {}
    for line in listing.splitlines():
        first, _, rest = line.partition(" ")
        if len(first) == 40 and rest.startswith(" "):  # sha1sum: "<sha1>  <path>"
            guids[rest[1:]] = first
        elif rest:
            times[rest] = int(float(first))
    messages = []
    for path, guid in sorted(guids.items()):
        file = PurePosixPath(path)
        messages.append(AsideMessage(file.parent.name, int(file.name.rstrip(".")), guid, times[path], path))
    return messages


def only_aside(aside: Iterable[AsideMessage], names: Mapping[str, str], live_guids: Mapping[str, frozenset[str]]) -> Recovery:
    """The set-aside messages whose mailbox (``names``: unique id -> live mailbox name) lacks their GUID."""
    to_append, no_mailbox = [], []
    for message in aside:
        name = names.get(message.unique_id)
        if name is None:
            no_mailbox.append(message)
        elif message.guid not in live_guids.get(name, frozenset()):
            to_append.append((name, message))
    return Recovery(tuple(to_append), tuple(no_mailbox))


def _live_guids(runner: CommandRunner, live: str, mailboxes: Sequence[str]) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in runner.run(live, ["sh", "-c", _GUIDS.format(bin=CYRUS_BIN), "sh", *mailboxes]).splitlines():
        if line.startswith("@mailbox "):
            current = found.setdefault(line.removeprefix("@mailbox "), set())
        elif current is not None and line.strip():
            current.add(line.split()[0])
    return {name: frozenset(guids) for name, guids in found.items()}


def find_recovery(runner: CommandRunner, *, aside_host: str, aside: Sequence[str], since: int, live: str) -> Recovery:
    """What the set-aside copy on ``aside_host`` has, newer than ``since``, that ``live`` lacks."""
    messages = parse_listing(runner.run(aside_host, ["sh", "-c", _LIST, "sh", str(since), *aside], user=ROOT))
    if not messages:
        return Recovery((), ())
    names = {state.unique_id: name for name, state in snapshot(runner, live).mailboxes.items()}
    wanted = sorted({names[m.unique_id] for m in messages if m.unique_id in names})
    return only_aside(messages, names, _live_guids(runner, live, wanted) if wanted else {})


def _user(mailbox: str) -> str:
    return mailbox.split(".")[1] if mailbox.startswith("user.") else ""


def redelivered(message: bytes, user: str, present: Mapping[str, frozenset[str]]) -> bool:
    """Whether the live copy holds the message under another GUID: its MX's queue id (in the
    topmost Received: header) is among the user's. An MX that lost the member half-way
    through an LMTP delivery queued the message again and delivered it to the new live member,
    with the store's own headers differing."""
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = _RECEIVED_ID.search(head)
    return found is not None and found.group(1).decode() in present.get(user, frozenset())


def append_recovered(
    runner: CommandRunner, recovery: Recovery, *, aside_host: str, live: str, admin_password: str
) -> tuple[int, int]:
    """Append the recovery's messages to the live copy, each read from the set-aside copy,
    except those the live copy has under another GUID (:func:`redelivered`); how many were
    appended, and how many skipped as such."""
    if not recovery.to_append:
        return 0, 0
    paths = [message.path for _, message in recovery.to_append]
    read = runner.run(aside_host, ["sh", "-c", _READ, "sh", *paths], user=ROOT)
    contents = dict(line.split(" ", 1) for line in read.splitlines())
    present = received_ids(runner, live, sorted({_user(name) for name, _ in recovery.to_append} - {""}))
    lines = [
        json.dumps({"mailbox": name, "internaldate": message.internaldate, "message": contents[message.path]})
        for name, message in recovery.to_append
        if not redelivered(base64.b64decode(contents[message.path]), _user(name), present)
    ]
    skipped = len(recovery.to_append) - len(lines)
    if not lines:
        return 0, skipped
    feed = "\n".join([admin_password, *lines]) + "\n"  # the password on stdin, never in argv
    answer = runner.run(live, [APPEND_PROGRAM, ADMIN_SOCKET, ADMIN_USER], user=ROOT, stdin=feed)
    try:
        return int(json.loads(answer)["appended"]), skipped
    except (ValueError, KeyError) as error:
        raise StoreError(f"{live}: {APPEND_PROGRAM} answered {answer!r}") from error
