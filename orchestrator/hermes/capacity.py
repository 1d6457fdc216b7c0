"""How much of each store pair's, and each backup server's, RAID capacity the quotas promised
on it would use. A backup server holds every mailbox of the pairs that replicate to it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hermes.model import Estate


@dataclass(frozen=True)
class Capacity:
    name: str  # the store pair, or the backup server
    users: int
    committed_bytes: int  # the sum of the quotas of the users held there
    usable_bytes: int  # usable RAID capacity: a pair's smaller member, or the backup server's
    headroom_percent: int

    @property
    def limit_bytes(self) -> int:
        return self.usable_bytes * (100 - self.headroom_percent) // 100

    @property
    def fits(self) -> bool:
        return self.committed_bytes <= self.limit_bytes

    @property
    def used_percent(self) -> float:
        return 100.0 * self.committed_bytes / self.usable_bytes if self.usable_bytes else float("inf")


def _usable(estate: Estate, hosts: tuple[str, ...]) -> int:
    sizes = [storage.usable_bytes for name in hosts if (storage := estate.host(name).storage) is not None]
    return min(sizes, default=0)


def pair_capacity(estate: Estate, accounts: Mapping[str, int | None], placement: Mapping[str, str]) -> list[Capacity]:
    """Committed quota against usable capacity, per pair, in the estate's pair order."""
    default = int(estate.policies.quota.default)
    users: Counter[str] = Counter(placement.values())
    committed: Counter[str] = Counter({pair: count * default for pair, count in users.items()})
    for user, quota in accounts.items():
        if quota is not None:
            committed[placement[user]] += quota - default
    headroom = estate.policies.capacity_headroom_percent
    return [
        Capacity(pair.name, users[pair.name], committed[pair.name], _usable(estate, pair.members), headroom)
        for pair in estate.services.store_pairs
    ]


def backup_capacity(estate: Estate, pairs: Sequence[Capacity]) -> list[Capacity]:
    """Per backup server, in the estate's order: the committed quota of every pair backed up
    there (``pairs``: pair_capacity's answer) against the server's usable capacity."""
    backup_of = {pair.name: pair.backup for pair in estate.services.store_pairs}
    headroom = estate.policies.capacity_headroom_percent
    rows = []
    for host in estate.services.backup.hosts:
        held = [row for row in pairs if backup_of[row.name] == host]
        users, committed = sum(row.users for row in held), sum(row.committed_bytes for row in held)
        rows.append(Capacity(host, users, committed, _usable(estate, (host,)), headroom))
    return rows
