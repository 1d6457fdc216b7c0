"""What a failover may have lost: messages an MX delivered to the old live member that are not
in the new live member's copy.

An MX's log (Exim's mainlog) says, per recipient, where it delivered a message (``=>``/``->``
lines, ``T=<transport> H=<host> [<address>]``) under the MX's queue id, and the ``<=`` line
gives the message's Message-ID (for people). The MX wrote that queue id into the message's
``Received:`` header (``id 1abcDE-...``), so it identifies the delivered copy in the mailbox
whatever the message's own headers are (a missing or repeated Message-ID). The deliveries to
the old live member whose queue id no message of the recipient's mailboxes on the new live
member carries were accepted by the old member and not replicated: they are on its disk only,
and reattaching it recovers them.

:func:`deliveries`, :func:`missing` and :func:`parse_received_ids` are pure; :func:`mx_log`
and :func:`received_ids` ask the hosts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hermes.store.hold import ROOT
from hermes.store.runner import CommandRunner, on_each

# The MX's transport to the stores (roles/mta: exim4.conf's store_lmtp).
STORE_TRANSPORT = "store_lmtp"
# Today's log and yesterday's (Debian's logrotate keeps the newest rotated file uncompressed).
MX_LOGS = ("/var/log/exim4/mainlog.1", "/var/log/exim4/mainlog")
CYRUS_BIN = "/usr/lib/cyrus/bin"

# An Exim queue id (4.96: 1abcDE-000ABC-AB): the MX's name for one message.
QUEUE_ID = "[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}"
_LINE = re.compile(rf"^(?P<at>\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (?P<id>{QUEUE_ID}) ")
_RECEIVED = re.compile(r" <= .*? id=(?P<message_id>\S+)")
_DELIVERED = re.compile(r" (?:=>|->) (?P<recipient>\S+)(?: <[^>]*>)? .*?\bT=(?P<transport>\S+) H=\S+ \[(?P<address>[^\]]+)\]")


@dataclass(frozen=True)
class Delivery:
    """One recipient's copy of a message, delivered by an MX to a store."""

    mx: str
    at: str  # the MX's log time
    exim_id: str
    recipient: str
    address: str  # the store it went to
    message_id: str | None


def deliveries(mx: str, log: str, transport: str = STORE_TRANSPORT) -> list[Delivery]:
    """The deliveries by ``transport`` in an MX's log, each with its message's Message-ID."""
    message_ids: dict[str, str] = {}
    found = []
    for line in log.splitlines():
        head = _LINE.match(line)
        if head is None:
            continue
        rest = line[head.end() - 1 :]
        if (received := _RECEIVED.match(rest)) is not None:
            message_ids[head["id"]] = received["message_id"]
        elif (delivered := _DELIVERED.match(rest)) is not None and delivered["transport"] == transport:
            found.append(
                Delivery(
                    mx, head["at"], head["id"], delivered["recipient"].lower(), delivered["address"], message_ids.get(head["id"])
                )
            )
    return found


def missing(
    delivered: Iterable[Delivery],
    old_address: str,
    mail_domain: str,
    users: Iterable[str],
    present: Mapping[str, frozenset[str]],
) -> list[Delivery]:
    """Deliveries to ``old_address`` for ``users`` whose queue id is not in ``present`` (user ->
    the MX queue ids in the new live copy's ``Received:`` headers)."""
    suffix = "@" + mail_domain.lower()
    wanted = set(users)
    lost = []
    for d in delivered:
        user = d.recipient.removesuffix(suffix)
        if d.address != old_address or not d.recipient.endswith(suffix) or user not in wanted:
            continue
        if d.exim_id not in present.get(user, frozenset()):
            lost.append(d)
    return sorted(lost, key=lambda d: (d.at, d.mx, d.exim_id, d.recipient))


def mx_log(runner: CommandRunner, mx: str) -> str:
    """An MX's log, yesterday's and today's."""
    return runner.run(mx, ["sh", "-c", 'for f in "$@"; do [ ! -r "$f" ] || cat "$f"; done', "sh", *MX_LOGS], user=ROOT)


# Every queue id in a Received: header (folded: "\tid 1abcDE-..." on a line of its own, or
# after "with esmtps"), of every message of each user, in every folder.
_RECEIVED_IDS = r"""
for user in "$@"; do
  dir=$({bin}/mbpath -u "$user" 2>/dev/null) || continue
  echo "@user $user"
  find "$dir" -name '*.' -type f -exec grep -h -o -E '(^|[[:space:]])id {queue_id}' {{}} + 2>/dev/null || true
done
"""


def parse_received_ids(listing: str) -> dict[str, frozenset[str]]:
    """User -> MX queue ids, from :data:`_RECEIVED_IDS`'s output."""
    found: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in listing.splitlines():
        if line.startswith("@user "):
            current = found.setdefault(line.removeprefix("@user ").strip(), set())
        elif current is not None and line.strip().startswith("id "):
            current.add(line.strip().removeprefix("id ").strip())
    return {user: frozenset(ids) for user, ids in found.items()}


def received_ids(runner: CommandRunner, host: str, users: Sequence[str]) -> dict[str, frozenset[str]]:
    """The MX queue ids of each user's messages on ``host`` (every folder; expunged messages
    kept for the delayed-expunge window included: they were delivered)."""
    script = _RECEIVED_IDS.format(bin=CYRUS_BIN, queue_id=QUEUE_ID)
    return parse_received_ids(runner.run(host, ["sh", "-c", script, "sh", *users]))


def lost_on(
    runner: CommandRunner, *, mx_hosts: Sequence[str], old_address: str, live: str, users: Sequence[str], mail_domain: str
) -> list[Delivery]:
    """What the MX hosts delivered to the old live member (at ``old_address``) and ``live``'s copy lacks."""
    logs = on_each(mx_hosts, lambda mx: deliveries(mx, mx_log(runner, mx)))
    delivered = [d for log in logs for d in log if d.address == old_address]
    suffix = "@" + mail_domain.lower()
    wanted = sorted({d.recipient.removesuffix(suffix) for d in delivered} & set(users))
    present = received_ids(runner, live, wanted) if wanted else {}
    return missing(delivered, old_address, mail_domain, wanted, present)
