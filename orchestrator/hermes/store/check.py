"""The consistency check of the store pairs.

For each pair the live member replicates on the channels :func:`hermes.topology.channels`
names (the same function the renderer configures them from): ``replica`` to its spare and
``backup`` to the backup server (unless the backup server is the spare itself). A channel
is *caught up* when the live member holds no pending sync log for it, and *agrees* when
every mailbox has the same unique id, UIDVALIDITY, last UID, message count and highest
modseq on both ends. Its *lag* is 0 when both hold; otherwise the larger of the age of its oldest pending sync log and the largest
gap between a mailbox's last delivery on the live member and on the receiver.

:func:`compare_mailboxes` and :func:`channel_status` are pure; :func:`check_pairs` asks
the hosts through a :class:`~hermes.store.runner.CommandRunner`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from hermes.errors import UsageError
from hermes.loader import LoadedEstate
from hermes.store.examine import SNAPSHOT_COMMAND, HostSnapshot, MailboxState, SyncLogFile, parse_snapshot
from hermes.store.runner import CommandRunner, on_each
from hermes.topology import channels, users_by_pair

# What must be equal on both ends of a channel, in report order.
COMPARED_FIELDS: tuple[str, ...] = ("unique_id", "uidvalidity", "last_uid", "messages", "highest_modseq")


class Agreement(StrEnum):
    AGREE = "agree"
    DIFFER = "differ"
    MISSING = "missing"  # on the live member, not on the receiver
    EXTRA = "extra"  # on the receiver only


@dataclass(frozen=True)
class MailboxComparison:
    mailbox: str
    agreement: Agreement
    source: MailboxState | None
    target: MailboxState | None
    differences: tuple[str, ...] = ()
    lag_seconds: float = 0.0


@dataclass(frozen=True)
class ChannelStatus:
    channel: str
    source: str
    target: str
    pending_logs: tuple[SyncLogFile, ...]
    oldest_pending_age: float | None
    mailboxes: tuple[MailboxComparison, ...]

    @property
    def caught_up(self) -> bool:
        return not self.pending_logs

    @property
    def agreeing(self) -> int:
        return sum(1 for m in self.mailboxes if m.agreement is Agreement.AGREE)

    @property
    def in_sync(self) -> bool:
        return self.caught_up and self.agreeing == len(self.mailboxes)

    @property
    def lag_seconds(self) -> float:
        if self.in_sync:
            return 0.0
        return max([self.oldest_pending_age or 0.0, *(m.lag_seconds for m in self.mailboxes)])


@dataclass(frozen=True)
class PairSpec:
    """A pair as the check needs it: who is live, where it replicates, whose mail it holds."""

    name: str
    live: str
    spare: str
    backup: str
    owners: frozenset[str]
    fenced: str | None = None

    @property
    def channels(self) -> tuple[tuple[str, str], ...]:
        """(channel, receiving host) of the live member."""
        return tuple((channel.name, channel.target) for channel in channels(self))


@dataclass(frozen=True)
class PairStatus:
    pair: str
    live: str
    channels: tuple[ChannelStatus, ...]

    @property
    def in_sync(self) -> bool:
        return all(c.in_sync for c in self.channels)


def compare_mailboxes(
    source: Mapping[str, MailboxState],
    target: Mapping[str, MailboxState],
    *,
    owners: Iterable[str] | None = None,
) -> tuple[MailboxComparison, ...]:
    """Mailbox by mailbox, the live member (source) against a receiver (target).

    Every mailbox of the source is compared. A receiver may hold other pairs' mail (a
    backup server): with ``owners``, its extra mailboxes count only when they belong to
    one of those users.
    """
    wanted = None if owners is None else frozenset(owners)
    extra = [name for name, state in target.items() if name not in source and (wanted is None or state.owner in wanted)]
    results: list[MailboxComparison] = []
    for name in sorted([*source, *extra]):
        mine, theirs = source.get(name), target.get(name)
        if theirs is None:
            results.append(MailboxComparison(name, Agreement.MISSING, mine, None, ("mailbox",), _lag(mine, None)))
        elif mine is None:
            results.append(MailboxComparison(name, Agreement.EXTRA, None, theirs, ("mailbox",)))
        else:
            differences = tuple(f for f in COMPARED_FIELDS if getattr(mine, f) != getattr(theirs, f))
            if differences:
                results.append(MailboxComparison(name, Agreement.DIFFER, mine, theirs, differences, _lag(mine, theirs)))
            else:
                results.append(MailboxComparison(name, Agreement.AGREE, mine, theirs))
    return tuple(results)


def _lag(source: MailboxState | None, target: MailboxState | None) -> float:
    if source is None or source.last_append == 0:
        return 0.0
    return float(max(0, source.last_append - (target.last_append if target is not None else 0)))


def channel_status(
    channel: str,
    source: HostSnapshot,
    target: HostSnapshot,
    *,
    owners: Iterable[str] | None = None,
) -> ChannelStatus:
    """One replication channel of a live member, from the two ends' snapshots."""
    pending = source.pending(channel)
    oldest = min((f.mtime for f in pending), default=None)
    return ChannelStatus(
        channel=channel,
        source=source.host,
        target=target.host,
        pending_logs=pending,
        oldest_pending_age=None if oldest is None else max(0.0, source.taken_at - oldest),
        mailboxes=compare_mailboxes(source.mailboxes, target.mailboxes, owners=owners),
    )


def pair_specs(loaded: LoadedEstate, names: Sequence[str] = ()) -> list[PairSpec]:
    """The estate's pairs (or those named), each with the users placed on it."""
    pairs = {p.name: p for p in loaded.estate.services.store_pairs}
    unknown = sorted(set(names) - pairs.keys())
    if unknown:
        raise UsageError(f"no store pair {', '.join(unknown)} in estate {loaded.estate.name} (pairs: {', '.join(sorted(pairs))})")
    users = users_by_pair(loaded.placement)
    return [
        PairSpec(
            name=name,
            live=pairs[name].live,
            spare=pairs[name].spare,
            backup=pairs[name].backup,
            owners=frozenset(users.get(name, ())),
            fenced=pairs[name].fenced,
        )
        for name in names or sorted(pairs)
    ]


def snapshot(runner: CommandRunner, host: str) -> HostSnapshot:
    """Ask one host for its mailboxes and sync logs."""
    return parse_snapshot(host, runner.run(host, SNAPSHOT_COMMAND))


def check_pairs(specs: Sequence[PairSpec], runner: CommandRunner) -> list[PairStatus]:
    """Ask every host involved once (all at once), then compare each pair's channels."""
    hosts = list(dict.fromkeys(host for spec in specs for host in (spec.live, *(target for _, target in spec.channels))))
    snapshots = dict(zip(hosts, on_each(hosts, lambda host: snapshot(runner, host)), strict=True))

    statuses = []
    for spec in specs:
        source = snapshots[spec.live]
        channels = tuple(
            channel_status(channel, source, snapshots[target], owners=None if target == spec.spare else spec.owners)
            for channel, target in spec.channels
        )
        statuses.append(PairStatus(spec.name, spec.live, channels))
    return statuses


def wait_in_sync(specs: Sequence[PairSpec], runner: CommandRunner, timeout: float) -> bool:
    """Whether every pair came into sync within ``timeout`` seconds (asked once a second)."""
    deadline = time.monotonic() + timeout
    while not all(status.in_sync for status in check_pairs(specs, runner)):
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True
