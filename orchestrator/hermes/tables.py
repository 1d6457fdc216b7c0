"""Rich tables describing a loaded estate, for `hermesctl show`."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from hermes.capacity import backup_capacity, pair_capacity
from hermes.loader import LoadedEstate


def _gb(size: int) -> str:
    return f"{size / 1e9:,.1f} GB"


def letter_ranges(letters: list[str]) -> str:
    """ "abcdxz" -> "a-d,x,z"."""
    runs: list[list[str]] = []
    for letter in sorted(letters):
        if runs and ord(letter) == ord(runs[-1][-1]) + 1:
            runs[-1].append(letter)
        else:
            runs.append([letter])
    return ",".join(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def hosts_table(loaded: LoadedEstate) -> Table:
    estate = loaded.estate
    feeds = {(s.name, r.name): r.power_feed for s in estate.sites for r in s.racks}
    table = Table("host", "roles", "site / rack / feed", "address", "storage", title=f"Hosts of {estate.name}")
    for host in sorted(estate.hosts, key=lambda h: h.name):
        storage = host.storage
        table.add_row(
            host.name,
            ", ".join(host.roles),
            f"{host.site} / {host.rack} / {feeds[(host.site, host.rack)]}",
            str(loaded.addresses[host.name]) + ("" if host.address is None else " (pinned)"),
            ""
            if storage is None
            else f"{storage.disks}x{_gb(int(storage.disk_size))} {storage.raid} = {_gb(storage.usable_bytes)}",
        )
    return table


def pairs_table(loaded: LoadedEstate) -> Table:
    table = Table("pair", "master", "replica", "live", "backup", "letters", "users", title="Store pairs")
    letters: dict[str, list[str]] = {}
    for letter, pair_name in sorted(loaded.estate.placement.pair_by_letter().items()):
        letters.setdefault(pair_name, []).append(letter)
    users = Counter(loaded.placement.values())
    for pair in loaded.estate.services.store_pairs:
        table.add_row(
            pair.name,
            pair.master,
            pair.replica,
            pair.live,
            pair.backup,
            letter_ranges(letters.get(pair.name, [])),
            f"{users[pair.name]:,}",
        )
    return table


def placement_table(loaded: LoadedEstate) -> Table:
    by_letter = loaded.estate.placement.pair_by_letter()
    users = Counter(user[0] for user in loaded.accounts)
    moved = Counter(user[0] for user in loaded.estate.placement.overrides)
    table = Table("letter", "pair", "mail name", "users", "moved away", title="Placement by first letter")
    for letter in sorted(by_letter):
        table.add_row(letter, by_letter[letter], f"mail{letter}", f"{users[letter]:,}", f"{moved[letter]:,}")
    return table


def capacity_table(loaded: LoadedEstate) -> Table:
    table = Table("pair / backup server", "users", "quota committed", "usable", "limit", "used", title="Capacity")
    pairs = pair_capacity(loaded.estate, loaded.accounts, loaded.placement)
    for row in [*pairs, *backup_capacity(loaded.estate, pairs)]:
        table.add_row(
            row.name,
            f"{row.users:,}",
            _gb(row.committed_bytes),
            _gb(row.usable_bytes),
            f"{_gb(row.limit_bytes)} ({100 - row.headroom_percent}%)",
            f"{row.used_percent:.1f}%",
        )
    return table


TABLES = {"hosts": hosts_table, "pairs": pairs_table, "placement": placement_table, "capacity": capacity_table}
