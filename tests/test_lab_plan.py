"""The lab's plan (pure): one podman network per estate network, the shared Internet side,
the routes between them, and the Internet's resolver's view of an estate."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermes.errors import LabError
from hermes.lab import internet
from hermes.lab.containers import lab_plan
from hermes.lab.guide import guide
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from tests.conftest import WriteEstate

ESTATES = PROJECT_ROOT / "inventory" / "estates"


def test_every_network_of_an_estate_is_a_lab_network_and_each_host_sits_on_its_own() -> None:
    loaded = load_estate(ESTATES / "hermes-2007.yml")
    plan = lab_plan(loaded)
    estate = loaded.estate
    assert [(n.name, n.subnet, n.gateway) for n in plan.networks] == [
        (f"hermes-hermes-2007-{n.name}", str(n.subnet), str(n.router)) for n in estate.networks
    ]
    network_of = {h.name: h.network for h in estate.hosts}
    assert {h.name: (h.network, h.address) for h in plan.hosts} == {
        name: (f"hermes-hermes-2007-{network_of[name]}", str(loaded.addresses[name])) for name in network_of
    }
    # Every pair of the estate's networks and the Internet side, each way; nothing else.
    subnets = [str(n.subnet) for n in estate.networks] + [str(internet.SUBNET)]
    assert sorted(plan.routes) == sorted((a, b) for a in subnets for b in subnets if a != b)
    assert plan.internet_network.subnet == str(internet.SUBNET)
    assert {(h.name, h.address, h.network) for h in plan.internet} == {
        (internet.CLIENT[0], internet.CLIENT[1], internet.NETWORK),
        (internet.MX[0], internet.MX[1], internet.NETWORK),
    }


def test_an_estate_on_the_internet_sides_subnet_or_names_is_refused(write_estate: WriteEstate) -> None:
    assert lab_plan(load_estate(write_estate())).hosts  # the lab estate itself comes up
    inside = write_estate({"networks[0].subnet": "198.51.100.0/25", "hosts[8].address": "198.51.100.53"})
    with pytest.raises(LabError, match=r"network service: 198\.51\.100\.0/25 overlaps the lab's Internet side"):
        lab_plan(load_estate(inside))
    # access-1, renamed everywhere the estate names it.
    named = write_estate(
        {"hosts[7].name": "internet-mx", "services.webmail.hosts": ["internet-mx"], "services.lists.hosts": ["internet-mx"]}
    )
    with pytest.raises(LabError, match="host internet-mx: a name the lab's Internet side uses"):
        lab_plan(load_estate(named))


def test_the_internet_resolver_sends_each_zone_of_the_estate_to_its_dns_hosts() -> None:
    loaded = load_estate(ESTATES / "lab.yml")
    text = internet.delegation_conf(loaded)
    dns_host = str(loaded.addresses["dns-1"])
    served = {line.split("/")[1] for line in text.splitlines() if line.startswith("server=/")}
    estate = loaded.estate
    assert served == {estate.domains.hosts, estate.domains.mail, estate.services.lists.domain, "ucs.lab.test"}
    assert all(line.endswith(f"/{dns_host}") for line in text.splitlines() if line.startswith("server="))
    # The Internet's own names are in the shared part, never an estate's.
    assert internet.DOMAIN not in text and f"mx-host={internet.DOMAIN}" in internet.RESOLVER_CONF


def test_the_guide_points_at_the_estates_own_hosts_user_and_vault(tmp_path: Path) -> None:
    loaded = load_estate(ESTATES / "lab.yml")
    estate = loaded.estate
    text = guide(loaded, tmp_path / "lab", tmp_path / "ca.crt")
    pair = estate.services.store_pairs[0]
    user = sorted(u for u, p in loaded.placement.items() if p == pair.name)[0]
    assert f"Try it as {user} (mail {user}@{estate.domains.mail}, on store pair {pair.name})" in text
    assert f"view {tmp_path / 'lab' / 'vault.yml'} --vault-password-file {tmp_path / 'lab' / 'vault-password'}" in text
    webmail = str(loaded.addresses[estate.services.webmail.hosts[0]])
    assert f"MAP webmail.{estate.domains.hosts} {webmail}'" in text
    assert f"{loaded.addresses[sorted(estate.services.mx.hosts)[0]]}  smtp.{estate.domains.hosts}" in text
