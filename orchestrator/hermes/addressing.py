"""Stable address allocation for hosts that do not pin one.

Each unpinned host starts from a slot derived from a hash of its name and takes
the next free address from there, so the same estate always gets the same
addresses and adding a host rarely moves another. Network, broadcast and
gateway addresses are never handed out, and no address is used twice. Pin an
address in the estate to make it permanent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import netaddr

from hermes.errors import Problem
from hermes.model import Host, Network


def _start_slot(name: str, size: int) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % size


def allocate_addresses(networks: Iterable[Network], hosts: Iterable[Host]) -> tuple[dict[str, netaddr.IPAddress], list[Problem]]:
    """Return host -> address, and the problems that prevent a full allocation."""
    by_name = {network.name: network for network in networks}
    hosts = list(hosts)
    addresses: dict[str, netaddr.IPAddress] = {}
    problems: list[Problem] = []
    taken: dict[netaddr.IPAddress, str] = {}

    for index, host in enumerate(hosts):
        if host.address is None:
            continue
        path = f"hosts[{index}].address"
        network = by_name.get(host.network)
        if network is not None and host.address not in network.subnet:
            problems.append(Problem(path, f"{host.address} is outside network {network.name} ({network.subnet})"))
        elif network is not None and host.address in (network.subnet.network, network.subnet.broadcast, network.router):
            problems.append(Problem(path, f"{host.address} is the network, broadcast or gateway address of {network.name}"))
        if host.address in taken:
            problems.append(Problem(path, f"{host.address} is already the address of host {taken[host.address]!r}"))
        taken.setdefault(host.address, host.name)
        addresses[host.name] = host.address

    for index, host in sorted(enumerate(hosts), key=lambda item: item[1].name):
        network = by_name.get(host.network)
        if host.address is not None or network is None:
            continue
        first, size = network.subnet.first + 1, network.subnet.size - 2
        slot = _start_slot(host.name, size)
        for step in range(size):
            candidate = netaddr.IPAddress(first + (slot + step) % size, network.subnet.version)
            if candidate not in taken and candidate != network.router:
                taken[candidate] = host.name
                addresses[host.name] = candidate
                break
        else:
            problems.append(
                Problem(f"hosts[{index}].network", f"network {network.name} ({network.subnet}) has no free address left")
            )
    return addresses, problems
