"""Every host resolves the estate's names through the estate's DNS (BIND on the DNS host),
which also recurses for it.

The round-robin and mail[a-z] names are in no hosts file, only in the zones, so a host that
finds them asked the DNS host. A name only the lab's upstream (podman's DNS) knows is answered
only if the DNS host recurses for that host; the dns scenario shows the same name refused to
the controller. Expected answers come from the estate file (which hosts provide what, the
letters' pairs and their live members) and the rendered addresses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from accesslib import MOLECULE, PROJECT, address, host

if str(PROJECT / "orchestrator") not in sys.path:
    sys.path.insert(0, str(PROJECT / "orchestrator"))

from hermes.loader import load_estate
from hermes.render import dns

ESTATE = load_estate(Path(__file__).resolve().parent.parent / "estate" / "access.yml").estate
ZONE = ESTATE.domains.hosts
PLATFORMS = sorted(MOLECULE.get_hosts("all"))


def resolved(name: str, on: str) -> set[str]:
    """The IPv4 addresses host ``on`` resolves ``name`` to, through its own resolver (NSS)."""
    answer = host(on).run(f"getent ahostsv4 {name}")
    assert answer.rc in (0, 2), answer.stderr
    return {line.split()[0] for line in answer.stdout.splitlines()}


@pytest.mark.parametrize("on", PLATFORMS)
def test_host_resolves_estate_names_through_the_estates_dns(on: str) -> None:
    resolv = host(on).file("/etc/resolv.conf").content_string
    nameservers = [line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver")]
    assert nameservers == [address(h) for h in sorted(ESTATE.services.dns.hosts)], resolv
    hosts_file = host(on).file("/etc/hosts").content_string
    # Round-robin names: the hosts of each service.
    for name, hosts in ((dns.IMAP, ESTATE.services.proxy.hosts), (dns.SMTP, ESTATE.services.mx.hosts)):
        assert f"{name}.{ZONE}" not in hosts_file  # so the answer below came from DNS
        assert resolved(f"{name}.{ZONE}", on) == {address(h) for h in hosts}, name
    # mail[a-z]: the live member of each letter's pair, one letter per pair.
    live = {pair.name: pair.live for pair in ESTATE.services.store_pairs}
    first_letter = {pair: letter for letter, pair in sorted(ESTATE.placement.pair_by_letter().items(), reverse=True)}
    assert len(first_letter) == len(live) == 2
    for pair, letter in first_letter.items():
        assert resolved(f"mail{letter}.{ZONE}", on) == {address(live[pair])}, letter
    # Recursion for this estate host: a name of no estate zone, forwarded to the lab's upstream.
    assert resolved(f"{on}.dns.podman", on) == {address(on)}
    # Refusal beside them: a name the zone does not hold resolves to nothing.
    assert resolved(f"mailaa.{ZONE}", on) == set()
