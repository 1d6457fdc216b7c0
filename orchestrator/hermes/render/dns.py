"""DNS data: every zone the estate's DNS hosts serve, decided once, and the names of a host.

The zones are complete but for the SOA serial, which counts changes on a server and is the DNS
role's business (it bumps it only when a zone's content changes), so a render stays
byte-identical for the same estate. Records are plain dicts (name relative to the zone, type,
TTL, value as zone-file text with absolute names ending in a dot): a 100x estate has tens of
thousands of them.
"""

from __future__ import annotations

import string
from collections.abc import Container, Mapping
from typing import Any

import netaddr

from hermes.loader import LoadedEstate
from hermes.model import Estate

Record = dict[str, Any]

# SOA timers (seconds). Every DNS host is a primary fed by the deploy, so refresh, retry and
# expire only matter to a secondary an operator adds (dns_allow_transfer); RIPE-203's values
# for refresh and retry, and two weeks before a cut-off secondary stops answering.
SOA_REFRESH = 86400
SOA_RETRY = 7200
SOA_EXPIRE = 1209600
# How long a resolver may cache "no such name" (RFC 2308): short, so a name just added (a new
# host, a new mail domain) is found within minutes.
SOA_NEGATIVE_TTL = 300
# The mailbox in the SOA (RFC 2142), in the accounts' mail domain, where the hubs accept mail
# (the hosts' domain has no MX). No account may take the name (invariants.RESERVED_NAMES).
HOSTMASTER = "hostmaster"
# Every hub is an equal mail exchanger: senders spread over them and retry the next.
MX_PREFERENCE = 10


# The round-robin names of the hosts' zone, one per service, over the hosts providing it.
SMTP, IMAP, POP, WEBMAIL = "smtp", "imap", "pop", "webmail"


def pools(estate: Estate) -> dict[str, list[str]]:
    """Round-robin name -> the hosts behind it, in zone order."""
    services = estate.services
    return {SMTP: services.mx.hosts, IMAP: services.proxy.hosts, POP: services.proxy.hosts, WEBMAIL: services.webmail.hosts}


def _record(name: str, rtype: str, value: str, ttl: int) -> Record:
    return {"name": name, "type": rtype, "ttl": ttl, "value": value}


def service_names(loaded: LoadedEstate, host: str) -> list[str]:
    """Every DNS name that can lead a client to ``host`` (its FQDN first), for its TLS certificate."""
    estate = loaded.estate
    services = estate.services
    zone = estate.domains.hosts
    names = [f"{host}.{zone}", host]
    names += [f"{name}.{zone}" for name, hosts in pools(estate).items() if host in hosts]
    if host in services.lists.hosts:
        names.append(services.lists.domain)
    pairs = {pair.name for pair in services.store_pairs if host in pair.members}
    names += [f"mail{letter}.{zone}" for letter, pair in sorted(estate.placement.pair_by_letter().items()) if pair in pairs]
    return names


def name_servers(estate: Estate) -> list[str]:
    """FQDNs of the DNS hosts, sorted: the NS of every zone; the first is the SOA's primary."""
    return [f"{h}.{estate.domains.hosts}" for h in sorted(estate.services.dns.hosts)]


def hostmaster(estate: Estate) -> str:
    """The SOA's mailbox (RNAME), hostmaster@<mail domain> written as a domain name."""
    return f"{HOSTMASTER}.{estate.domains.mail}"


def mail_exchangers(estate: Estate) -> list[dict[str, Any]]:
    """The MX set of every mail domain, once: each hub by its FQDN (an A/AAAA name, never a CNAME)."""
    return [{"preference": MX_PREFERENCE, "host": f"{h}.{estate.domains.hosts}"} for h in sorted(estate.services.mx.hosts)]


def mail_domains(estate: Estate) -> list[str]:
    """The zones that carry the mail exchangers: accounts', lists' and managed domains (their
    long forms too), sorted."""
    domains = {estate.domains.mail, estate.services.lists.domain, *(n for d in estate.domains.managed for n in d.names)}
    return sorted(domains)


def _parent(zone: str, zones: Container[str]) -> str | None:
    """The nearest other zone served here that ``zone`` lies below, if any (label by label, so
    a 100x estate's twenty thousand managed domains take no quadratic time)."""
    labels = zone.split(".")
    return next((p for i in range(1, len(labels)) if (p := ".".join(labels[i:])) in zones), None)


def zone_records(estate: Estate, addresses: Mapping[str, netaddr.IPAddress]) -> dict[str, list[Record]]:
    """zone -> its records in a fixed order; the SOA, the NS of the apex and the MX of the mail
    domains are the role's to write from the facts beside them (rendered once, not per zone)."""
    ttl, short = estate.policies.dns_ttl, estate.policies.smtp_ttl
    services = estate.services
    host_zone = estate.domains.hosts
    text = {h: str(a) for h, a in addresses.items()}
    kind = {h: "A" if a.version == 4 else "AAAA" for h, a in addresses.items()}

    def fqdn(host: str) -> str:
        return f"{host}.{host_zone}."

    def round_robin(name: str, hosts: list[str], record_ttl: int) -> list[Record]:
        return [_record(name, kind[h], text[h], record_ttl) for h in sorted(hosts)]

    records = [_record(h, kind[h], text[h], ttl) for h in sorted(text)]
    # WHOI's short TTL lets a hub leave the smtp pool within a minute.
    for name, hosts in pools(estate).items():
        records += round_robin(name, hosts, short)
    # mail[a-z]: the live member of the letter's pair; a CNAME so a switchover moves one name.
    live = {pair.name: pair.live for pair in services.store_pairs}
    by_letter = estate.placement.pair_by_letter()
    records += [_record(f"mail{letter}", "CNAME", fqdn(live[by_letter[letter]]), short) for letter in string.ascii_lowercase]
    zones: dict[str, list[Record]] = {host_zone: records}
    for domain in mail_domains(estate):
        zones.setdefault(domain, [])
    zones[services.lists.domain] += round_robin("@", services.lists.hosts, ttl)
    # A zone below another served here is delegated from it, to the same name servers, with
    # glue for a name server whose name lies in the delegated zone.
    servers = sorted(services.dns.hosts)
    served = set(zones)
    for zone in sorted(zones):
        parent = _parent(zone, served)
        if parent is None:
            continue
        label = zone.removesuffix("." + parent)
        zones[parent] += [_record(label, "NS", fqdn(h), ttl) for h in servers]
        if host_zone == zone or host_zone.endswith("." + zone):
            glue = f"{host_zone}.".removesuffix(f".{parent}.")
            zones[parent] += [_record(f"{h}.{glue}", kind[h], text[h], ttl) for h in servers]
    return zones
