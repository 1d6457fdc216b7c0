"""Who may connect to each host's services: the inbound rules of its firewall, decided once.

What listens where is :mod:`hermes.listening`'s; who talks to whom is the estate's topology:

* the Internet-facing services (the hubs' SMTP, the proxies' IMAP and POP, webmail, DNS) take
  connections from anywhere;
* a store pair member takes IMAP and POP from the proxies, LMTP from the hubs, and replication
  from its pair's other member; a backup server takes replication from the members of the
  pairs it backs up; the lists host takes LMTP from the hubs; the directory takes LDAPS from the
  estate's hosts;
* SSH, administrative IMAP on the stores and backup servers, and LDAPS, from the management
  networks too.

A pair member is opened for what it does as live member and as spare alike, so a switchover or
failover changes no firewall: a port a member does not listen on in its present role is refused
by the kernel as any closed port is. Everything else is refused. Pure functions of the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import netaddr

from hermes import listening
from hermes.loader import LoadedEstate
from hermes.topology import backed_up_pairs, pair_of

SSH = 22
ANYWHERE: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class Opening:
    """One port of the host open to ``sources`` (addresses and subnets; none: anywhere)."""

    port: int
    protocol: str  # tcp or udp
    service: str  # the estate's name for the service (a host role), or ssh
    listener: str  # what listens there (imaps, lmtp, ...)
    sources: tuple[str, ...]

    def by_version(self, version: int) -> list[str]:
        return [s for s in self.sources if netaddr.IPNetwork(s).version == version]


def _sorted(sources: Iterable[str]) -> tuple[str, ...]:
    """Unique, in address order; a single address written bare (a /32 network too)."""
    networks = sorted({netaddr.IPNetwork(s) for s in sources}, key=lambda n: (n.version, n))
    return tuple(str(n.ip) if n.size == 1 else str(n) for n in networks)


def inbound(loaded: LoadedEstate, host: str) -> list[Opening]:
    """The ports ``host`` opens and to whom, sorted by port."""
    estate = loaded.estate
    services = estate.services

    def addresses(hosts: Iterable[str]) -> tuple[str, ...]:
        return tuple(str(loaded.addresses[h]) for h in hosts)

    management = tuple(str(network.subnet) for network in estate.management_networks)
    hubs = addresses(services.mx.hosts)
    openings: list[tuple[str, dict[str, int], tuple[str, ...]]] = [("ssh", {"ssh": SSH}, management)]
    if host in services.mx.hosts:
        openings.append(("mx", listening.smtp_ports(estate), ANYWHERE))
    if host in services.proxy.hosts:
        openings.append(("proxy", listening.mailbox_ports(estate), ANYWHERE))
    if (pair := pair_of(estate, host)) is not None:
        peer = pair.replica if host == pair.master else pair.master
        openings += [
            ("store", listening.mailbox_ports(estate), addresses(services.proxy.hosts) + management),
            ("store", {"lmtp": listening.LMTP}, hubs),
            ("store", {"sync": listening.SYNC}, addresses([peer])),
        ]
    if host in services.backup.hosts:
        senders = [member for backed in backed_up_pairs(estate, host) for member in backed.members]
        openings += [
            ("backup", listening.mailbox_ports(estate, imap_only=True), management),
            ("backup", {"sync": listening.SYNC}, addresses(senders)),
        ]
    if host in services.dns.hosts:
        openings.append(("dns", {"dns": listening.DNS}, ANYWHERE))
    if host in services.directory.hosts:
        openings.append(("directory", {"ldaps": listening.LDAPS}, addresses(h.name for h in estate.hosts) + management))
    if host in services.webmail.hosts:
        openings.append(("webmail", {"http": listening.HTTP, "https": listening.HTTPS}, ANYWHERE))
    if host in services.lists.hosts:
        # Mailman's REST API listens on loopback only.
        openings.append(("lists", {"lmtp": listening.LISTS_LMTP}, hubs))
    return sorted(
        Opening(port, protocol, service, listener, _sorted(sources))
        for service, ports, sources in openings
        for listener, port in ports.items()
        for protocol in (("tcp", "udp") if listener == "dns" else ("tcp",))
    )
