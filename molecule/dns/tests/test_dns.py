"""The estate's DNS, asked real questions from the controller with dnspython (and, for
recursion, from the DNS host itself).

Expected values come from the estate file (through hermes.loader: placement letters, TTLs,
which hosts provide what), the rendered inventory (addresses, pairs' live members, the SOA
fields) and the scenario's extra zones, never from the server's own output. Every refusal is
asked beside an acceptance in the same test, so a server that is simply down cannot pass it.
Runs after side_effect.yml, which added one record to one zone.
"""

from __future__ import annotations

import json
import os
import string
import sys
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import testinfra
import testinfra.utils.ansible_runner
import yaml

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
if str(PROJECT / "orchestrator") not in sys.path:
    sys.path.insert(0, str(PROJECT / "orchestrator"))

from hermes.loader import load_estate  # noqa: E402

SCENARIO = Path(__file__).resolve().parent.parent
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
ESTATE = load_estate(SCENARIO / "estate" / "dns.yml").estate
EXTRA_VARS = yaml.safe_load((SCENARIO / "vars" / "extra-zones.yml").read_text())
EXTRA_ZONES: dict[str, list[dict[str, Any]]] = EXTRA_VARS["dns_extra_zones"]
SERVER = "dns-ns1"

RENDERED = testinfra.utils.ansible_runner.AnsibleRunner(str(EPHEMERAL / "rendered"))
VARS: dict[str, Any] = RENDERED.get_variables(SERVER)
DNS: dict[str, Any] = VARS["hermes_dns"]
HOSTS: dict[str, dict[str, Any]] = VARS["hermes_hosts"]
ADDRESS = str(HOSTS[SERVER]["address"])
HOST_ZONE = ESTATE.domains.hosts
MAIL_DOMAINS = sorted({ESTATE.domains.mail, ESTATE.services.lists.domain, *(d.name for d in ESTATE.domains.managed)})
ZONES = sorted({HOST_ZONE, *MAIL_DOMAINS, *EXTRA_ZONES})
CHECKZONE = "named-checkzone -k fail -M fail -n fail -S fail"

testinfra_hosts = [f"podman://{SERVER}"]


def ask(name: str, rdtype: str, *, recurse: bool = False, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if not recurse:
        query.flags &= ~dns.flags.RD
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, ADDRESS, timeout=5)


def answer(name: str, rdtype: str) -> dns.rrset.RRset:
    """The authoritative answer for ``name``/``rdtype``: it must exist and carry the AA flag."""
    response = ask(name, rdtype)
    assert response.rcode() == dns.rcode.NOERROR, (name, rdtype, dns.rcode.to_text(response.rcode()))
    assert response.flags & dns.flags.AA, (name, rdtype, "not authoritative")
    rrset = response.get_rrset(response.answer, dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.from_text(rdtype))
    assert rrset is not None, (name, rdtype, response.to_text())
    return rrset


def texts(rrset: dns.rrset.RRset) -> set[str]:
    return {r.to_text() for r in rrset}


def fqdn(host: str) -> str:
    return f"{host}.{HOST_ZONE}."


def test_named_runs_recursing_for_the_estate_only(host: Any) -> None:
    named = host.service("named")
    assert named.is_running and named.is_enabled, host.run("journalctl --no-pager --lines=30 --unit=named").stdout
    options = host.file("/etc/bind/named.conf.options").content_string
    assert VARS["ansible_managed"] in options
    # The recursion ACL is every estate host, from the estate's hosts (not the rendered list).
    acl = options.split("acl recursion_clients {", 1)[1].split("};", 1)[0]
    assert {entry.strip(" \t;") for entry in acl.split()} == {"localhost", *(HOSTS[h.name]["address"] for h in ESTATE.hosts)}
    assert "allow-recursion { recursion_clients; };" in options
    assert f"forwarders {{ {ESTATE.services.dns.forwarders[0]}; }};" in options


def test_soa_of_every_zone_names_the_estate() -> None:
    primary = fqdn(sorted(ESTATE.services.dns.hosts)[0])
    hostmaster = f"hostmaster.{ESTATE.domains.mail}."
    for zone in ZONES:
        (soa,) = answer(zone, "SOA")
        assert (soa.mname.to_text(), soa.rname.to_text()) == (primary, hostmaster), zone
        assert (soa.refresh, soa.retry, soa.expire, soa.minimum) == (
            DNS["soa"]["refresh"],
            DNS["soa"]["retry"],
            DNS["soa"]["expire"],
            DNS["soa"]["negative_ttl"],
        )


def test_ns_of_every_zone_are_the_dns_hosts() -> None:
    expected = {fqdn(h) for h in ESTATE.services.dns.hosts}
    assert len(expected) == 2
    for zone in ZONES:
        assert texts(answer(zone, "NS")) == expected, zone
    # Each name server's name is an address record here (a secondary on paper included).
    for name in ESTATE.services.dns.hosts:
        assert texts(answer(fqdn(name), "A")) == {HOSTS[name]["address"]}


def test_every_host_has_its_address() -> None:
    for name, facts in HOSTS.items():
        assert texts(answer(fqdn(name), "A")) == {facts["address"]}, name


def test_every_mail_domain_has_the_hubs_as_mx() -> None:
    hubs = ESTATE.services.mx.hosts
    assert len(hubs) == 2
    for domain in MAIL_DOMAINS:
        mx = answer(domain, "MX")
        assert {(r.preference, r.exchange.to_text()) for r in mx} == {(10, fqdn(h)) for h in hubs}, domain
        # RFC 2181 10.3: each exchanger is an address record, not an alias.
        for record in mx:
            exchange = record.exchange.to_text()
            assert texts(answer(exchange, "A")) == {HOSTS[exchange.split(".")[0]]["address"]}
            assert answer(exchange, "A")[0].rdtype == dns.rdatatype.A
    # The hosts' domain receives no mail: its apex has no MX (a NOERROR without an answer).
    hosts_apex = ask(HOST_ZONE, "MX")
    assert hosts_apex.rcode() == dns.rcode.NOERROR and hosts_apex.flags & dns.flags.AA
    assert not hosts_apex.answer


def test_mail_letters_name_the_live_member_of_their_pair() -> None:
    live = {name: pair["live"] for name, pair in VARS["hermes_store_pairs"].items()}
    by_letter = ESTATE.placement.pair_by_letter()
    short = ESTATE.policies.smtp_ttl
    answers = {}
    for letter in string.ascii_lowercase:
        cname = answer(f"mail{letter}.{HOST_ZONE}", "CNAME")
        assert texts(cname) == {fqdn(live[by_letter[letter]])}, letter
        assert cname.ttl == short
        answers[letter] = cname[0].target.to_text()
    # The scenario splits the letters over two pairs, one after a switchover (its replica live).
    assert answers["a"] == fqdn("s1a") and answers["z"] == fqdn("s2b")
    # A full lookup follows the alias to the live member's address.
    response = ask(f"maila.{HOST_ZONE}", "A")
    assert {r.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for r in rrset} == {
        HOSTS["s1a"]["address"]
    }


def test_service_names_round_robin_with_the_short_ttl() -> None:
    services = ESTATE.services
    short = ESTATE.policies.smtp_ttl
    for name, hosts in (
        ("smtp", services.mx.hosts),
        ("imap", services.proxy.hosts),
        ("pop", services.proxy.hosts),
        ("webmail", services.webmail.hosts),
    ):
        rrset = answer(f"{name}.{HOST_ZONE}", "A")
        assert texts(rrset) == {HOSTS[h]["address"] for h in hosts}, name
        assert rrset.ttl == short, name
    assert len(answer(f"smtp.{HOST_ZONE}", "A")) == 2
    lists = answer(ESTATE.services.lists.domain, "A")
    assert texts(lists) == {HOSTS[h]["address"] for h in ESTATE.services.lists.hosts}
    assert lists.ttl == ESTATE.policies.dns_ttl


def test_recursion_is_refused_beside_an_authoritative_answer() -> None:
    # Acceptance: a name of a zone served here, asked as a resolver asks (recursion desired).
    accepted = ask(f"smtp.{HOST_ZONE}", "A", recurse=True)
    assert accepted.rcode() == dns.rcode.NOERROR and accepted.flags & dns.flags.AA and accepted.answer
    assert not accepted.flags & dns.flags.RA
    # Refusal: a name of no zone served here is not looked up elsewhere, nor answered from a cache.
    refused = ask("www.example.org.", "A", recurse=True)
    assert refused.rcode() == dns.rcode.REFUSED, refused.to_text()
    assert not refused.answer


def test_the_estates_hosts_may_recurse_and_outsiders_may_not(host: Any) -> None:
    # A name only the lab's upstream knows (podman's DNS names the containers under
    # dns.podman), so the question stays on this machine. Acceptance: asked from the DNS host's
    # own estate address, an estate host, it is forwarded and answered, with recursion available.
    name = f"{SERVER}.dns.podman."
    inside = host.run(f"dig +tries=1 +time=5 -b {ADDRESS} @{ADDRESS} {name} A")
    assert inside.rc == 0 and "status: NOERROR" in inside.stdout, inside.stdout
    assert " ra" in inside.stdout.split("flags:", 1)[1].split(";", 1)[0], inside.stdout
    assert f"{name}\t" in inside.stdout and ADDRESS in inside.stdout.split("ANSWER SECTION:", 1)[1], inside.stdout
    # Refusal: the controller, on the network's gateway and no estate host, gets nothing.
    outside = ask(name, "A", recurse=True)
    assert outside.rcode() == dns.rcode.REFUSED and not outside.answer, outside.to_text()


def test_tcp_answers_too() -> None:
    response = ask(ESTATE.domains.mail, "MX", tcp=True)
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA and response.answer


def test_no_zone_transfer() -> None:
    # Acceptance beside it: the same zone answers an ordinary query over TCP.
    assert ask(HOST_ZONE, "SOA", tcp=True).answer
    refused = ask(HOST_ZONE, "AXFR", tcp=True)
    assert refused.rcode() == dns.rcode.REFUSED


def test_extra_zone_is_served() -> None:
    zone = "dnsbl.lab.test"
    assert zone in EXTRA_ZONES
    listed = {r["name"] for r in EXTRA_ZONES[zone] if r["type"] == "A"}
    for name in listed:
        assert texts(answer(f"{name}.{zone}", "A")) == {"127.0.0.2"}
    # RFC 5782: 127.0.0.1 is never listed.
    unlisted = ask(f"1.0.0.127.{zone}", "A")
    assert unlisted.rcode() == dns.rcode.NXDOMAIN and unlisted.flags & dns.flags.AA


def test_deployed_zones_pass_the_strict_checks(host: Any) -> None:
    for zone in ZONES:
        path = f"/etc/bind/hermes/db.{zone}"
        check = host.run(f"{CHECKZONE} {zone} {path}")
        assert check.rc == 0, check.stdout + check.stderr
        assert VARS["ansible_managed"] in host.file(path).content_string
    whole = host.run("named-checkconf -z")
    assert whole.rc == 0, whole.stdout + whole.stderr
    # Only the zones served have files.
    files = set(host.check_output("ls /etc/bind/hermes").split())
    assert files == {f"db.{zone}" for zone in ZONES}


def test_serial_moves_only_where_content_changed() -> None:
    """side_effect.yml kept every serial, then added one record to the first mail domain."""
    before: dict[str, int] = json.loads((EPHEMERAL / "serials-before.json").read_text())
    assert sorted(before) == ZONES
    changed = MAIL_DOMAINS[0]
    assert texts(answer(f"side-effect.{changed}", "TXT")) == {'"added by the side effect"'}
    for zone in ZONES:
        (soa,) = answer(zone, "SOA")
        if zone == changed:
            assert soa.serial > before[zone], zone
        else:
            assert soa.serial == before[zone], zone
