"""hermes_dns: the zones the DNS hosts serve, decided by the renderer (group_vars/dns.yml)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml

from hermes.errors import EstateError
from hermes.loader import LoadedEstate, load_estate
from hermes.paths import PROJECT_ROOT
from hermes.render import render_inventory
from hermes.render.dns import SOA_EXPIRE, SOA_NEGATIVE_TTL, SOA_REFRESH, SOA_RETRY
from tests.conftest import WriteEstate

LAB = PROJECT_ROOT / "inventory" / "estates" / "lab.yml"


def _dns_text(loaded: LoadedEstate) -> str:
    return render_inventory(loaded, "x.yml")["group_vars/dns.yml"]


def _dns(loaded: LoadedEstate) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(_dns_text(loaded))["hermes_dns"]
    return data


def _records(zone: list[dict[str, Any]], rtype: str, name: str | None = None) -> list[dict[str, Any]]:
    return [r for r in zone if r["type"] == rtype and (name is None or r["name"] == name)]


def _lab_host(name: str, roles: list[str], address: str) -> dict[str, Any]:
    return {"name": name, "site": "lab", "rack": "r2", "network": "service", "address": address, "roles": roles}


def test_the_mail_exchangers_are_rendered_once_for_every_mail_domain() -> None:
    loaded = load_estate(LAB)
    text = _dns_text(loaded)
    dns = yaml.safe_load(text)["hermes_dns"]
    hubs = sorted(loaded.estate.services.mx.hosts)
    assert dns["mail_exchangers"] == [{"preference": 10, "host": f"{h}.lab.test"} for h in hubs]
    assert dns["mail_domains"] == ["hermes.lab.test", "lists.lab.test", "ucs.lab.test"]
    # Once: no zone repeats them as records, and the text has no anchors or aliases.
    assert all(not _records(records, "MX") for records in dns["zones"].values())
    assert "&id" not in text and "*id" not in text
    # Every mail domain is a zone served here; the exchangers are address records of the hosts' zone.
    assert set(dns["mail_domains"]) <= set(dns["zones"])
    addresses = {r["name"]: r["value"] for r in _records(dns["zones"]["lab.test"], "A")}
    assert {mx["host"].removesuffix(".lab.test") for mx in dns["mail_exchangers"]} <= set(addresses)


def test_soa_and_ns_are_derived_from_the_dns_hosts(write_estate: WriteEstate, lab_data: dict[str, Any]) -> None:
    one = _dns(load_estate(LAB))
    assert one["name_servers"] == ["dns-1.lab.test"]
    assert one["soa"] == {
        "primary": "dns-1.lab.test",
        "hostmaster": "hostmaster.hermes.lab.test",
        "refresh": SOA_REFRESH,
        "retry": SOA_RETRY,
        "expire": SOA_EXPIRE,
        "negative_ttl": SOA_NEGATIVE_TTL,
    }
    assert one["default_ttl"] == 3600
    # A second DNS host, listed after the first but sorting before it: it becomes the primary.
    lab_data["hosts"].append(_lab_host("dns-0", ["dns"], "10.251.0.54"))
    lab_data["services"]["dns"]["hosts"] = ["dns-1", "dns-0"]
    two = _dns(load_estate(write_estate(data=lab_data)))
    assert two["name_servers"] == ["dns-0.lab.test", "dns-1.lab.test"]
    assert two["soa"]["primary"] == "dns-0.lab.test"
    assert _records(two["zones"]["lab.test"], "A", "dns-0") == [
        {"name": "dns-0", "type": "A", "ttl": 3600, "value": "10.251.0.54"}
    ]


def test_service_names_round_robin_with_the_short_ttl() -> None:
    loaded = load_estate(LAB)
    zone = _dns(loaded)["zones"]["lab.test"]
    hubs = {str(loaded.addresses[h]) for h in ("ppsw-1", "ppsw-2")}
    for name in ("smtp", "imap", "pop"):
        records = _records(zone, "A", name)
        assert {r["value"] for r in records} == hubs, name
        assert {r["ttl"] for r in records} == {60}, name
    assert {r["value"] for r in _records(zone, "A", "webmail")} == {str(loaded.addresses["access-1"])}
    # Every host has its address record, at the ordinary TTL.
    hosts = {h.name: str(loaded.addresses[h.name]) for h in loaded.estate.hosts}
    assert {r["name"]: r["value"] for r in zone if r["ttl"] == 3600 and r["type"] == "A"} == hosts


def test_mail_letters_follow_the_live_member_after_a_switchover(write_estate: WriteEstate) -> None:
    def letters(loaded: LoadedEstate) -> dict[str, str]:
        zone = _dns(loaded)["zones"]["lab.test"]
        return {r["name"]: r["value"] for r in _records(zone, "CNAME")}

    def expected(loaded: LoadedEstate) -> dict[str, str]:
        live = {pair.name: pair.live for pair in loaded.estate.services.store_pairs}
        by_letter = loaded.estate.placement.pair_by_letter()
        return {f"mail{c}": f"{live[by_letter[c]]}.lab.test." for c in string.ascii_lowercase}

    before = load_estate(LAB)
    assert letters(before) == expected(before)
    assert set(letters(before).values()) == {"store-1a.lab.test.", "store-2a.lab.test."}
    after = load_estate(write_estate({"services.store_pairs[0].live": "store-1b"}))
    assert letters(after) == expected(after)
    assert set(letters(after).values()) == {"store-1b.lab.test.", "store-2a.lab.test."}


def test_mail_letters_are_per_letter_not_per_user(write_estate: WriteEstate) -> None:
    """The lab's two pairs split the letters; a user moved by an override moves no mail[a-z] name."""
    loaded = load_estate(write_estate({"services.store_pairs[1].live": "store-2b"}))
    assert loaded.placement["fanf2"] == "cyrus-2"
    zone = _dns(loaded)["zones"]["lab.test"]
    mail = {r["name"]: r["value"] for r in _records(zone, "CNAME")}
    assert mail["mailf"] == "store-1a.lab.test."
    assert mail["mailm"] == "store-1a.lab.test."
    assert mail["mailn"] == "store-2b.lab.test."
    assert mail["mailz"] == "store-2b.lab.test."


def test_zones_below_another_are_delegated_to_the_same_servers() -> None:
    zones = _dns(load_estate(LAB))["zones"]
    delegations = {(r["name"], r["value"]) for r in _records(zones["lab.test"], "NS")}
    assert delegations == {(label, "dns-1.lab.test.") for label in ("hermes", "lists", "ucs")}
    assert _records(zones["lists.lab.test"], "A", "@")[0]["value"] == "10.251.0.3"


def test_a_delegated_hosts_zone_gets_glue(write_estate: WriteEstate) -> None:
    # The hosts' zone below the mail domain: the name servers' names lie below the cut.
    loaded = load_estate(write_estate({"domains.hosts": "csi.hermes.lab.test"}))
    parent = _dns(loaded)["zones"]["hermes.lab.test"]
    assert _records(parent, "NS") == [{"name": "csi", "type": "NS", "ttl": 3600, "value": "dns-1.csi.hermes.lab.test."}]
    assert _records(parent, "A") == [{"name": "dns-1.csi", "type": "A", "ttl": 3600, "value": "10.251.0.53"}]


def test_ipv6_hosts_get_aaaa_records() -> None:
    loaded = load_estate(PROJECT_ROOT / "tests" / "data" / "render" / "ipv6" / "estate.yml")
    dns = _dns(loaded)
    zone = dns["zones"][loaded.estate.domains.hosts]
    for host in loaded.estate.hosts:
        address = loaded.addresses[host.name]
        expected = "A" if address.version == 4 else "AAAA"
        assert _records(zone, expected, host.name) == [
            {"name": host.name, "type": expected, "ttl": loaded.estate.policies.dns_ttl, "value": str(address)}
        ]


def test_a_dns_host_must_have_the_dns_role(write_estate: WriteEstate) -> None:
    # Accepted: the lab's DNS host has the role, and is the zones' name server.
    assert _dns(load_estate(LAB))["name_servers"] == ["dns-1.lab.test"]
    # Refused: a name server that is not a DNS host.
    with pytest.raises(EstateError) as raised:
        load_estate(write_estate({"services.dns.hosts": ["access-1"]}))
    assert "services.dns.hosts[0]" in {p.path for p in raised.value.problems}


def test_render_is_the_same_twice(tmp_path: Path) -> None:
    estate = PROJECT_ROOT / "inventory" / "estates" / "hermes-2007.yml"
    assert _dns_text(load_estate(estate)) == _dns_text(load_estate(estate))
