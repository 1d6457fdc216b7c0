"""DNS data: host names, MX for every mail domain, round-robin smtp and mail[a-z].

Records only: the SOA and its serial are the DNS role's business at deploy time,
so a render stays byte-identical for the same estate.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import netaddr

from hermes.loader import LoadedEstate
from hermes.model import Estate

Record = dict[str, Any]


def _record(name: str, rtype: str, value: str, ttl: int) -> Record:
    return {"name": name, "type": rtype, "ttl": ttl, "value": value}


def _address_type(address: netaddr.IPAddress) -> str:
    return "A" if address.version == 4 else "AAAA"


def service_names(loaded: LoadedEstate, host: str) -> list[str]:
    """Every DNS name that can lead a client to ``host`` (its FQDN first), for its TLS certificate."""
    estate = loaded.estate
    services = estate.services
    zone = estate.domains.hosts
    names = [f"{host}.{zone}", host]
    for name, hosts in (
        ("smtp", services.mx.hosts),
        ("imap", services.proxy.hosts),
        ("pop", services.proxy.hosts),
        ("webmail", services.webmail.hosts),
    ):
        if host in hosts:
            names.append(f"{name}.{zone}")
    if host in services.lists.hosts:
        names.append(services.lists.domain)
    pairs = {pair.name for pair in services.store_pairs if host in pair.members}
    names += [f"mail{letter}.{zone}" for letter, pair in sorted(estate.placement.pair_by_letter().items()) if pair in pairs]
    return names


def render_zones(estate: Estate, addresses: Mapping[str, netaddr.IPAddress]) -> dict[str, list[Record]]:
    """zone -> records, in a fixed order."""
    ttl, short = estate.policies.dns_ttl, estate.policies.smtp_ttl
    services = estate.services
    host_zone = estate.domains.hosts

    def fqdn(host: str) -> str:
        return f"{host}.{host_zone}."

    def round_robin(name: str, hosts: list[str], record_ttl: int) -> list[Record]:
        return [_record(name, _address_type(addresses[h]), str(addresses[h]), record_ttl) for h in sorted(hosts)]

    records = [_record(h, _address_type(addresses[h]), str(addresses[h]), ttl) for h in sorted(addresses)]
    # WHOI's short TTL lets a hub leave the smtp pool within a minute.
    records += round_robin("smtp", services.mx.hosts, short)
    records += round_robin("imap", services.proxy.hosts, short)
    records += round_robin("pop", services.proxy.hosts, short)
    records += round_robin("webmail", services.webmail.hosts, short)
    pairs = {pair.name: pair for pair in services.store_pairs}
    by_letter = estate.placement.pair_by_letter()
    records += [
        _record(f"mail{letter}", "CNAME", fqdn(pairs[by_letter[letter]].live), short) for letter in string.ascii_lowercase
    ]
    mx = [_record("@", "MX", f"10 {fqdn(h)}", ttl) for h in sorted(services.mx.hosts)]
    zones = {host_zone: records}
    for domain in (estate.domains.mail, services.lists.domain, *(d.name for d in estate.domains.managed)):
        zones.setdefault(domain, []).extend(mx)
    zones[services.lists.domain] = zones[services.lists.domain] + round_robin("@", services.lists.hosts, ttl)
    return zones
