"""Each host's firewall opens what its services listen on, to the clients the estate says, and no more."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import netaddr
import pytest

from hermes import firewall, listening
from hermes.loader import LoadedEstate, load_estate
from hermes.paths import PROJECT_ROOT
from hermes.render.roles import firewall_facts
from hermes.topology import StoreRole, pair_of, store_role

ESTATES = PROJECT_ROOT / "inventory" / "estates"
IPV6_CASE = Path(__file__).parent / "data" / "render" / "ipv6" / "estate.yml"


@pytest.fixture(scope="module", params=["lab.yml", "hermes-2007.yml"])
def loaded(request: pytest.FixtureRequest) -> LoadedEstate:
    return load_estate(ESTATES / request.param)


def _opened(loaded: LoadedEstate, host: str) -> dict[tuple[int, str], tuple[str, ...]]:
    return {(o.port, o.protocol): o.sources for o in firewall.inbound(loaded, host)}


def _addresses(loaded: LoadedEstate, hosts: Iterable[str]) -> set[str]:
    return {str(loaded.addresses[h]) for h in hosts}


def _networks(sources: Iterable[str]) -> set[netaddr.IPNetwork]:
    return {netaddr.IPNetwork(s) for s in sources}


def _admits(sources: tuple[str, ...], address: str) -> bool:
    return sources == firewall.ANYWHERE or any(netaddr.IPAddress(address) in netaddr.IPNetwork(s) for s in sources)


def test_every_port_a_host_listens_on_is_open_and_no_other(loaded: LoadedEstate) -> None:
    estate = loaded.estate
    for host in estate.hosts:
        listened = {p.port for p in listening.service_ports(estate, host.name) if p.port != listening.LISTS_REST}
        if (pair := pair_of(estate, host.name)) is not None:
            # A member may be live or spare after the next switchover: both roles' ports.
            for role in (StoreRole.LIVE, StoreRole.SPARE):
                listened |= set(listening.store_ports(estate, role)[1].values())
            assert host.name in pair.members
        tcp = {port for port, protocol in _opened(loaded, host.name) if protocol == "tcp"}
        assert tcp == listened | {firewall.SSH}, host.name
        # Mailman's REST API is loopback only: never opened, though the lists host listens on it.
        assert listening.LISTS_REST not in tcp


def test_ssh_and_a_stores_imap_come_from_the_management_networks_and_the_proxies_only(loaded: LoadedEstate) -> None:
    estate = loaded.estate
    management = {n.subnet for n in estate.management_networks}
    proxies = _addresses(loaded, estate.services.proxy.hosts)
    webmail = next(iter(_addresses(loaded, estate.services.webmail.hosts) - proxies))
    for host in estate.hosts:
        sources = _opened(loaded, host.name)
        assert _networks(sources[firewall.SSH, "tcp"]) == management
        if store_role(estate, host.name) in (StoreRole.LIVE, StoreRole.SPARE):
            imaps = sources[estate.policies.ports.imaps.port, "tcp"]
            assert _networks(imaps) == _networks(proxies) | management
            # Webmail reads through the proxies, never from a store directly.
            assert not _admits(imaps, webmail)


def test_lmtp_comes_from_the_hubs_and_replication_from_the_pairs_own_members(loaded: LoadedEstate) -> None:
    estate = loaded.estate
    hubs = _addresses(loaded, estate.services.mx.hosts)
    for pair in estate.services.store_pairs:
        for member in pair.members:
            peer = (set(pair.members) - {member}).pop()
            sources = _opened(loaded, member)
            assert set(sources[listening.LMTP, "tcp"]) == hubs
            assert set(sources[listening.SYNC, "tcp"]) == _addresses(loaded, [peer])
            # The backup server never writes to a member, nor a hub replicates.
            assert not _admits(sources[listening.SYNC, "tcp"], str(loaded.addresses[pair.backup]))
            assert not _admits(sources[listening.SYNC, "tcp"], next(iter(hubs)))
    for backup in estate.services.backup.hosts:
        members = {m for pair in estate.services.store_pairs if pair.backup == backup for m in pair.members}
        others = {m for pair in estate.services.store_pairs for m in pair.members} - members
        sync = _opened(loaded, backup)[listening.SYNC, "tcp"]
        assert set(sync) == _addresses(loaded, members)
        assert not any(_admits(sync, a) for a in _addresses(loaded, others))


def test_the_public_services_are_open_to_anyone_and_dns_on_udp_too(loaded: LoadedEstate) -> None:
    estate = loaded.estate
    hub, proxy, dns = estate.services.mx.hosts[0], estate.services.proxy.hosts[0], estate.services.dns.hosts[0]
    assert _opened(loaded, hub)[estate.policies.ports.smtp.port, "tcp"] == firewall.ANYWHERE
    assert _opened(loaded, proxy)[estate.policies.ports.imaps.port, "tcp"] == firewall.ANYWHERE
    assert _opened(loaded, dns)[listening.DNS, "udp"] == firewall.ANYWHERE
    # A store member is no public server: neither SMTP nor DNS.
    member = estate.services.store_pairs[0].master
    assert (estate.policies.ports.smtp.port, "tcp") not in _opened(loaded, member)
    assert (listening.DNS, "udp") not in _opened(loaded, member)


def test_the_role_fact_splits_sources_by_ip_version() -> None:
    loaded = load_estate(IPV6_CASE)
    host = loaded.estate.services.store_pairs[0].master
    rules = {(r.port, r.protocol): r for r in firewall_facts(loaded, host).inbound}
    ssh = rules[firewall.SSH, "tcp"]
    assert ssh.ipv6 == [str(n.subnet.ip) for n in loaded.estate.management_networks]
    assert ssh.ipv4 == [] and not ssh.anywhere
    lmtp = rules[listening.LMTP, "tcp"]
    assert set(lmtp.ipv6) == _addresses(loaded, loaded.estate.services.mx.hosts)
