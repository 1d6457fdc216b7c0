"""How much of each store pair's RAID capacity the quotas promised on it would use."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from hermes.model import Estate, StorePair


@dataclass(frozen=True)
class PairCapacity:
    pair: str
    users: int
    committed_bytes: int  # the sum of the quotas of the pair's users
    usable_bytes: int  # the smaller usable RAID capacity of the two members
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


def _usable(estate: Estate, pair: StorePair) -> int:
    sizes = [storage.usable_bytes for name in pair.members if (storage := estate.host(name).storage) is not None]
    return min(sizes, default=0)


def pair_capacity(estate: Estate, accounts: Mapping[str, int | None], placement: Mapping[str, str]) -> list[PairCapacity]:
    """Committed quota against usable capacity, per pair, in the estate's pair order."""
    default = int(estate.policies.quota.default)
    users: Counter[str] = Counter(placement.values())
    committed: Counter[str] = Counter({pair: count * default for pair, count in users.items()})
    for user, quota in accounts.items():
        if quota is not None:
            committed[placement[user]] += quota - default
    headroom = estate.policies.capacity_headroom_percent
    return [
        PairCapacity(pair.name, users[pair.name], committed[pair.name], _usable(estate, pair), headroom)
        for pair in estate.services.store_pairs
    ]
