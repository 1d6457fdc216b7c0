"""The store topology's rules, decided once: who is live, who replicates to whom, whose mail is where.

The renderer turns these into role facts and the store check (``hermesctl store status``)
compares the hosts they name, so both read the same answer. Pure functions of the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from hermes.model import Estate, StorePair

# The names of the live member's replication channels (sync_client -n <name>).
REPLICA_CHANNEL = "replica"
BACKUP_CHANNEL = "backup"


class StoreRole(StrEnum):
    """What a host does in the message store now."""

    LIVE = "live"  # serves its pair's users and replicates
    SPARE = "spare"  # the pair's other member: receives replication, serves no user
    BACKUP = "backup"  # a backup server: receives replication from the pairs it backs up


@dataclass(frozen=True)
class Channel:
    """One rolling replication stream from a live member to a receiving host."""

    name: str
    source: str
    target: str


class PairMembers(Protocol):
    """Who is who in a pair now: a model StorePair, or the store check's view of one."""

    @property
    def live(self) -> str: ...
    @property
    def spare(self) -> str: ...
    @property
    def backup(self) -> str: ...
    @property
    def fenced(self) -> str | None: ...


def channels(pair: PairMembers) -> tuple[Channel, ...]:
    """The live member's channels: to its spare, and to the backup server (never a pair member).
    A spare that a failover fenced gets none: it is down, and it rejoins by ``store reattach``,
    which copies every user to it and recovers what only it had."""
    to_spare = () if pair.fenced == pair.spare else (Channel(REPLICA_CHANNEL, pair.live, pair.spare),)
    return (*to_spare, Channel(BACKUP_CHANNEL, pair.live, pair.backup))


def pair_of(estate: Estate, host: str) -> StorePair | None:
    return next((pair for pair in estate.services.store_pairs if host in pair.members), None)


def store_role(estate: Estate, host: str) -> StoreRole | None:
    """A pair member is live or spare; a backup server (never a pair member) is backup; else nothing."""
    pair = pair_of(estate, host)
    if pair is not None:
        return StoreRole.LIVE if pair.live == host else StoreRole.SPARE
    if host in estate.services.backup.hosts:
        return StoreRole.BACKUP
    return None


def backed_up_pairs(estate: Estate, host: str) -> tuple[StorePair, ...]:
    """The pairs whose backup server is ``host``."""
    return tuple(pair for pair in estate.services.store_pairs if pair.backup == host)


def sync_sources(estate: Estate, host: str) -> tuple[str, ...]:
    """Hosts allowed to replicate to ``host``: a spare's live peer; the live member of every
    pair backed up here. Never a member that is not live: an old live member that came back
    after a failover must not write over the copies (a switchover changes the backup server's
    list too)."""
    sources: set[str] = set()
    pair = pair_of(estate, host)
    if pair is not None and pair.spare == host:
        sources.add(pair.live)
    sources.update(backed_up.live for backed_up in backed_up_pairs(estate, host))
    sources.discard(host)
    return tuple(sorted(sources))


def partitions(estate: Estate, host: str) -> dict[str, str]:
    """Cyrus partition -> directory: its own pair's, and those of every pair backed up here."""
    own = pair_of(estate, host)
    pairs = ([own] if own is not None else []) + list(backed_up_pairs(estate, host))
    return {p.name: p.path for pair in pairs for p in pair.partitions}


def users_by_pair(placement: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Store pair -> the users placed on it, sorted (one pass over the placement)."""
    grouped: dict[str, list[str]] = {}
    for user, pair in placement.items():
        grouped.setdefault(pair, []).append(user)
    return {pair: tuple(sorted(users)) for pair, users in grouped.items()}
