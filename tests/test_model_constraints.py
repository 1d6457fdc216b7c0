"""The model accepts only what the roles implement: each refusal beside the nearest acceptance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hermes import listening
from hermes.errors import EstateError
from hermes.invariants import RESERVED_NAMES
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from tests.conftest import WriteEstate

# The lab's list, as list cases that add another list keep it.
LIST = {"name": "cs-unix-support", "owners": ["dpc22"], "members": ["dpc22", "fanf2", "ph10"]}

# A routed domain, and a long form for the lab's managed domain, as cases build on them.
ENG = {"name": "eng.cam.example", "servers": ["mx.eng.cam.example"]}
UCS_LONG = {"domains.managed[0].long_forms": ["ucs.cam.example"]}

# (id, the refused edit, the accepted edit next to it, expected path, expected words)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    (
        "warning-never-fires",
        {"policies.quota.warning_percent": 100},
        {"policies.quota.warning_percent": 99},
        "policies.quota.warning_percent",
        "less than or equal to 99",
    ),
    (
        "warning-always-fires",
        {"policies.quota.warning_percent": 0},
        {"policies.quota.warning_percent": 1},
        "policies.quota.warning_percent",
        "greater than or equal to 1",
    ),
    (
        "imap-without-tls",
        {"policies.ports": {"imap": {"port": 143, "tls": "none"}}},
        {"policies.ports": {"imap": {"port": 143, "tls": "starttls"}}},
        "policies.ports.imap.tls",
        "'starttls' or 'implicit'",
    ),
    (
        "pop2",
        {"policies.ports": {"pop2": {"port": 109, "tls": "none", "enabled": False}}},
        {"policies.ports": {"pop3": {"port": 110, "tls": "starttls", "enabled": False}}},
        "policies.ports.pop2",
        "unknown field",
    ),
    (
        "imap-auth-field",
        {"policies.ports": {"imap": {"port": 143, "tls": "starttls", "auth": True}}},
        {"policies.ports": {"smtps": {"port": 465, "tls": "implicit", "auth": True}}},
        "policies.ports.imap.auth",
        "unknown field",
    ),
    (
        "no-smtp-listener",
        {
            "policies.ports": {
                n: {"port": p, "tls": "starttls", "enabled": False}
                for n, p in (("smtp", 25), ("smtps", 465), ("submission", 587))
            }
        },
        {
            "policies.ports": {
                # smtp too: Mailman sends through it (lists-without-smtp)
                n: {"port": p, "tls": "starttls", "enabled": n != "smtps"}
                for n, p in (("smtp", 25), ("smtps", 465), ("submission", 587))
            }
        },
        "policies.ports",
        "at least one of smtp, smtps and submission",
    ),
    (
        "message-size-zero",
        {"policies.message_size_limit": "0"},
        {"policies.message_size_limit": "64KiB"},
        "policies.message_size_limit",
        "greater than or equal to 65536",
    ),
    (
        "queue-never-runs",
        {"policies.queue_interval": "0m"},
        {"policies.queue_interval": "1m"},
        "policies.queue_interval",
        "should match pattern",
    ),
    (
        "lists-domain-is-mail-domain",
        {"services.lists.domain": "hermes.lab.test"},
        {"services.lists.domain": "lists.hermes.lab.test"},
        "services.lists.domain",
        "is also domains.mail",
    ),
    (
        "managed-domain-is-hosts-domain",
        {"domains.managed[0].name": "lab.test"},
        {"domains.managed[0].name": "dept.lab.test"},
        "domains.managed[0].name",
        "is the hosts' domain",
    ),
    (
        "routed-domain-is-a-managed-domain",
        {"domains.routed": [{"name": "ucs.lab.test", "servers": ["mx.eng.cam.example"]}]},
        {"domains.routed": [{"name": "eng.cam.example", "servers": ["mx.eng.cam.example"]}]},
        "domains.routed[0].name",
        "is a managed domain",
    ),
    (
        "routed-domain-in-an-estate-zone",
        {"domains.routed": [{"name": "eng.hermes.lab.test", "servers": ["mx.eng.cam.example"]}]},
        {"domains.routed": [{"name": "eng.hermes-lab.example", "servers": ["mx.eng.cam.example"]}]},
        "domains.routed[0].name",
        "is in 'hermes.lab.test', a zone of the estate",
    ),
    (
        "routed-server-is-an-estate-host",
        {"domains.routed": [{"name": "eng.cam.example", "servers": ["mx.eng.cam.example", "ppsw-1.lab.test"]}]},
        {"domains.routed": [{"name": "eng.cam.example", "servers": ["mx.eng.cam.example", "ppsw-1.eng.cam.example"]}]},
        "domains.routed[0].servers[1]",
        "is in 'lab.test', a zone of the estate",
    ),
    (
        "routed-domain-twice",
        {"domains.routed": [{"name": "eng.cam.example", "servers": ["mx.eng.cam.example"]}] * 2},
        {
            "domains.routed": [
                {"name": "eng.cam.example", "servers": ["mx.eng.cam.example"]},
                {"name": "cup.cam.example", "servers": ["mx.eng.cam.example"]},
            ]
        },
        "domains.routed",
        "routed domain 'eng.cam.example' is defined more than once",
    ),
    (
        "routed-server-twice",
        {"domains.routed": [{"name": "eng.cam.example", "servers": ["mx.eng.cam.example"] * 2}]},
        {"domains.routed": [{"name": "eng.cam.example", "servers": ["mx.eng.cam.example", "mx2.eng.cam.example"]}]},
        "domains.routed[0].servers",
        "servers listed twice: mx.eng.cam.example",
    ),
    (
        "long-form-is-another-domain",
        {"domains.managed[0].long_forms": ["lists.lab.test"]},
        {"domains.managed[0].long_forms": ["university-computing-service.lab.test"]},
        "domains.managed[0].long_forms[0]",
        "'lists.lab.test' is already services.lists.domain",
    ),
    (
        "long-form-twice",
        {
            "domains.managed[0].long_forms": ["ucs.cam.example"],
            "domains.routed": [{**ENG, "long_forms": ["ucs.cam.example"]}],
        },
        {
            "domains.managed[0].long_forms": ["ucs.cam.example"],
            "domains.routed": [{**ENG, "long_forms": ["engineering.cam.example"]}],
        },
        "domains.routed[0].long_forms[0]",
        "'ucs.cam.example' is already domains.managed[0].long_forms[0]",
    ),
    (
        "routed-long-form-is-a-managed-long-form-zone",
        {
            "domains.managed[0].long_forms": ["ucs.cam.example"],
            "domains.routed": [{**ENG, "long_forms": ["eng.ucs.cam.example"]}],
        },
        {
            "domains.managed[0].long_forms": ["ucs.cam.example"],
            "domains.routed": [{**ENG, "long_forms": ["eng.ucs-x.cam.example"]}],
        },
        "domains.routed[0].long_forms[0]",
        "is in 'ucs.cam.example', a zone of the estate",
    ),
    (
        "alias-loop-through-a-long-form",
        {**UCS_LONG, "domains.managed[0].aliases.help": ["help@ucs.cam.example"]},
        {**UCS_LONG, "domains.managed[0].aliases.help": ["tony.finch@ucs.cam.example"]},
        "domains.managed[0].aliases.help",
        "an alias loop",
    ),
    (
        "alias-to-unknown-local-part-of-a-long-form",
        {**UCS_LONG, "domains.managed[0].aliases.help": ["nobody@ucs.cam.example"]},
        {**UCS_LONG, "domains.managed[0].aliases.help": ["mail-support@ucs.cam.example"]},
        "domains.managed[0].aliases.help",
        "ucs.cam.example has no alias 'nobody'",
    ),
    (
        "alias-to-unknown-local-part",
        {"domains.managed[0].aliases.help": ["nobody@ucs.lab.test"]},
        {"domains.managed[0].aliases.help": ["tony.finch@ucs.lab.test"]},
        "domains.managed[0].aliases.help",
        "ucs.lab.test has no alias 'nobody'",
    ),
    (
        "alias-to-unknown-user-address",
        {"domains.managed[0].aliases.help": ["ghost@hermes.lab.test"]},
        {"domains.managed[0].aliases.help": ["fanf2@hermes.lab.test"]},
        "domains.managed[0].aliases.help",
        "'ghost' is not in the accounts file",
    ),
    (
        "alias-loop",
        {"domains.managed[0].aliases.a": ["b@ucs.lab.test"], "domains.managed[0].aliases.b": ["A@ucs.lab.test"]},
        {"domains.managed[0].aliases.a": ["b@ucs.lab.test"], "domains.managed[0].aliases.b": ["fanf2"]},
        "domains.managed[0].aliases.a",
        "lead back to it (an alias loop)",
    ),
    (
        "hub-is-store",
        {"hosts[2].roles": ["store", "mx"], "services.mx.hosts": ["ppsw-1", "ppsw-2", "store-1a"]},
        {"hosts[2].roles": ["store"], "services.mx.hosts": ["ppsw-1", "ppsw-2"]},
        "services.store_pairs[0].master",
        "is a mail hub (mx) and cannot be a store",
    ),
    (
        "directory-on-a-hub",
        {"hosts[0].roles": ["mx", "proxy", "directory"], "hosts[8].roles": ["dns"], "services.directory.hosts": ["ppsw-1"]},
        {"hosts[8].roles": ["dns", "directory"], "services.directory.hosts": ["dns-1"]},
        "services.directory.hosts[0]",
        "is a mail hub (mx) and cannot hold the directory",
    ),
    (
        "role-address-to-nobody",
        {"domains.role_addresses.abuse": ["ghost"]},
        {"domains.role_addresses.abuse": ["fanf2"]},
        "domains.role_addresses.abuse",
        "'ghost' is not in the accounts file",
    ),
    (
        "role-address-loop",
        {"domains.role_addresses.abuse": ["postmaster@ucs.lab.test"]},
        {"domains.role_addresses.abuse": ["tony.finch@ucs.lab.test"]},
        "domains.role_addresses.abuse",
        "is itself a role address",
    ),
    (
        "no-postmaster",
        {"domains.role_addresses.postmaster": []},
        {"domains.role_addresses.postmaster": ["dpc22"]},
        "domains.role_addresses.postmaster",
        "at least 1 item",
    ),
    (
        "alias-to-no-list",
        {"domains.managed[0].aliases.unix-support": ["cs-unix@lists.lab.test"]},
        {"domains.managed[0].aliases.unix-support": ["cs-unix-support-request@lists.lab.test"]},
        "domains.managed[0].aliases.unix-support",
        "lists.lab.test has no list 'cs-unix'",
    ),
    (
        "list-named-like-mailmans-address",
        {"services.lists.lists": [LIST, {"name": "help-request", "owners": ["dpc22"]}]},
        {"services.lists.lists": [LIST, {"name": "help-requests", "owners": ["dpc22"]}]},
        "services.lists.lists[1].name",
        "may not end in '-request'",
    ),
    (
        "list-twice",
        {"services.lists.lists": [LIST, LIST]},
        {"services.lists.lists": [LIST, {**LIST, "name": "cs-unix-support-2"}]},
        "services.lists.lists",
        "defined more than once",
    ),
    (
        "list-behind-a-role-address",
        {"services.lists.lists": [LIST, {"name": "abuse", "owners": ["fanf2"]}]},
        {"services.lists.lists": [LIST, {"name": "abuse-reports", "owners": ["fanf2"]}]},
        "services.lists.lists[1].name",
        "is a role address",
    ),
    (
        "list-without-owner",
        {"services.lists.lists[0].owners": []},
        {"services.lists.lists[0].owners": ["fanf2"]},
        "services.lists.lists[0].owners",
        "at least 1 item",
    ),
    (
        "list-member-not-an-address",
        {"services.lists.lists[0].members": ["dpc22", "Fanf2"]},
        {"services.lists.lists[0].members": ["dpc22", "Tony.Finch@ucs.lab.test"]},
        "services.lists.lists[0].members[1]",
        "should match pattern",
    ),
    (
        "list-member-no-account",
        {"services.lists.lists[0].members": ["dpc22", "ghost"]},
        {"services.lists.lists[0].members": ["dpc22", "rjd4"]},
        "services.lists.lists[0].members",
        "'ghost' is not in the accounts file",
    ),
    (
        "list-member-no-account-at-the-mail-domain",
        {"services.lists.lists[0].members": ["ghost@hermes.lab.test"]},
        {"services.lists.lists[0].members": ["someone@example.org"]},
        "services.lists.lists[0].members",
        "'ghost' is not in the accounts file",
    ),
    (
        "list-owner-no-alias",
        {"services.lists.lists[0].owners": ["nobody@ucs.lab.test"]},
        {"services.lists.lists[0].owners": ["mail-support@ucs.lab.test"]},
        "services.lists.lists[0].owners",
        "ucs.lab.test has no alias 'nobody'",
    ),
    (
        "list-member-twice",
        {"services.lists.lists[0].members": ["dpc22", "fanf2", "DPC22@hermes.lab.test"]},
        {"services.lists.lists[0].members": ["dpc22", "fanf2", "ph10@hermes.lab.test"]},
        "services.lists.lists[0].members",
        "'dpc22@hermes.lab.test' is listed more than once",
    ),
    (
        "list-owner-twice",
        {"services.lists.lists[0].owners": ["dpc22", "dpc22"]},
        {"services.lists.lists[0].owners": ["dpc22", "fanf2"]},
        "services.lists.lists[0].owners",
        "is listed more than once",
    ),
    (
        "list-member-of-itself",
        {"services.lists.lists[0].members": ["dpc22", "cs-unix-support@lists.lab.test"]},
        {"services.lists.lists": [LIST, {"name": "staff", "owners": ["dpc22"], "members": ["cs-unix-support@lists.lab.test"]}]},
        "services.lists.lists[0].members",
        "is an address of this list",
    ),
    (
        "list-owned-by-its-own-owner-address",
        {"services.lists.lists[0].owners": ["cs-unix-support-owner@lists.lab.test"]},
        {"services.lists.lists[0].owners": ["fanf2@hermes.lab.test"]},
        "services.lists.lists[0].owners",
        "is an address of this list",
    ),
    (
        "list-member-no-list",
        {"services.lists.lists[0].members": ["staff@lists.lab.test"]},
        {"services.lists.lists": [{**LIST, "members": ["staff@lists.lab.test"]}, {"name": "staff", "owners": ["dpc22"]}]},
        "services.lists.lists[0].members",
        "lists.lab.test has no list 'staff'",
    ),
    (
        "lists-without-smtp",
        {"policies.ports": {"smtp": {"port": 25, "tls": "starttls", "enabled": False}}},
        {
            "policies.ports": {"smtp": {"port": 25, "tls": "starttls", "enabled": False}},
            "services.lists.lists": [],
            "domains.managed[0].aliases.unix-support": ["dpc22"],
        },
        "policies.ports.smtp.enabled",
        "Mailman sends the lists' mail through the hubs' smtp port",
    ),
    (
        "directory-host-twice",
        {"services.directory.hosts": ["dns-1", "dns-1"]},
        {"services.directory.hosts": ["dns-1"]},
        "services.directory.hosts",
        "listed more than once",
    ),
    (
        # dns-1 is the lab's DNS host: forwarding to it would loop.
        "dns-forwarder-is-an-estate-host",
        {"services.dns.forwarders": ["10.251.0.53"]},
        {"services.dns.forwarders": ["10.251.0.1"]},
        "services.dns.forwarders[0]",
        "the address of estate host 'dns-1'",
    ),
    (
        "dns-forwarder-loopback",
        {"services.dns.forwarders": ["127.0.0.53"]},
        {"services.dns.forwarders": ["10.251.0.1"]},
        "services.dns.forwarders[0]",
        "a loopback address",
    ),
    (
        "dns-forwarder-twice",
        {"services.dns.forwarders": ["192.0.2.53", "10.251.0.1", "192.0.2.53"]},
        {"services.dns.forwarders": ["192.0.2.53", "10.251.0.1"]},
        "services.dns.forwarders[0]",
        "listed twice",
    ),
]


# Relay networks: named client networks, none wider than the floor, none over the estate's own
# networks unless marked (the lab's one network is service, 10.251.0.0/24; mta-peer-a's case).
DEPT = {"name": "departmental-servers", "subnet": "172.20.0.0/16"}
PEER = {"name": "relay-peer", "subnet": "10.251.0.20/32"}
# Management networks: as narrow as relay networks, and holding no estate host.
OPERATORS = {"name": "operators", "subnet": "198.18.0.0/24"}
LAB_MACHINE = {"name": "lab-machine", "subnet": "10.251.0.1/32"}
# The lab's backup server on disks too small for both pairs (2.5 GB of quota), though big enough
# for either alone (1.0 and 1.5 GB, under its 1.8 GB limit).
SMALL_BACKUP = {"disks": 4, "disk_size": "1GB", "raid": "raid6"}
RELAY_AND_LIMIT_CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    (
        "relay-everything-ipv4",
        {"services.mx.relay_networks": [{"name": "everything", "subnet": "0.0.0.0/0"}]},
        {"services.mx.relay_networks": [DEPT]},
        "services.mx.relay_networks[0].subnet",
        "0.0.0.0/0 is wider than a /16",
    ),
    (
        "relay-everything-ipv6",
        {"services.mx.relay_networks": [{"name": "everything", "subnet": "::/0"}]},
        {"services.mx.relay_networks": [{"name": "site", "subnet": "2001:db8:1::/48"}]},
        "services.mx.relay_networks[0].subnet",
        "::/0 is wider than a /48",
    ),
    (
        "relay-wider-than-the-floor",
        {"services.mx.relay_networks": [{**DEPT, "subnet": "172.20.0.0/15"}]},
        {"services.mx.relay_networks": [{**DEPT, "subnet": "172.20.0.0/16"}]},
        "services.mx.relay_networks[0].subnet",
        "wider than a /16",
    ),
    (
        "relay-ipv6-wider-than-the-floor",
        {"services.mx.relay_networks": [{"name": "site", "subnet": "2001:db8::/47"}]},
        {"services.mx.relay_networks": [{"name": "site", "subnet": "2001:db8::/48"}]},
        "services.mx.relay_networks[0].subnet",
        "wider than a /48",
    ),
    (
        "relay-ipv4-written-as-ipv6",
        {"services.mx.relay_networks": [{**DEPT, "subnet": "::ffff:172.20.0.0/112"}]},
        {"services.mx.relay_networks": [DEPT]},
        "services.mx.relay_networks[0].subnet",
        "IPv4 written as IPv6",
    ),
    (
        "relay-network-without-a-name",
        {"services.mx.relay_networks": ["172.20.0.0/16"]},
        {"services.mx.relay_networks": [DEPT]},
        "services.mx.relay_networks[0]",
        "'172.20.0.0/16' needs a name",
    ),
    (
        "relay-network-name-twice",
        {"services.mx.relay_networks": [DEPT, {**DEPT, "subnet": "172.21.0.0/16"}]},
        {"services.mx.relay_networks": [DEPT, {"name": "colleges", "subnet": "172.21.0.0/16"}]},
        "services.mx.relay_networks",
        "relay network 'departmental-servers' is defined more than once",
    ),
    (
        "relay-over-the-estate-unmarked",
        {"services.mx.relay_networks": [DEPT, PEER]},
        {"services.mx.relay_networks": [DEPT, {**PEER, "covers_estate_hosts": True}]},
        "services.mx.relay_networks[1].subnet",
        "overlaps the estate's network service",
    ),
    (
        "relay-whole-estate-network-unmarked",
        {"services.mx.relay_networks": [{"name": "service", "subnet": "10.251.0.0/16"}]},
        {"services.mx.relay_networks": [{"name": "service", "subnet": "10.251.0.0/16", "covers_estate_hosts": True}]},
        "services.mx.relay_networks[0].subnet",
        "overlaps the estate's network service",
    ),
    (
        "relay-marked-but-outside-the-estate",
        {"services.mx.relay_networks": [{**DEPT, "covers_estate_hosts": True}]},
        {"services.mx.relay_networks": [DEPT]},
        "services.mx.relay_networks[0].covers_estate_hosts",
        "overlaps none of the estate's networks",
    ),
    (
        "management-from-everywhere",
        {"management_networks": [{"name": "everything", "subnet": "0.0.0.0/0"}]},
        {"management_networks": [OPERATORS]},
        "management_networks[0].subnet",
        "0.0.0.0/0 is wider than a /16",
    ),
    (
        "management-from-nowhere",
        {"management_networks": []},
        {"management_networks": [OPERATORS]},
        "management_networks",
        "at least 1 item",
    ),
    (
        # The lab machine is the network's router (10.251.0.1); the /24 holds every lab host.
        "management-over-estate-hosts",
        {"management_networks": [{"name": "service", "subnet": "10.251.0.0/24"}]},
        {"management_networks": [LAB_MACHINE]},
        "management_networks[0].subnet",
        "holds estate host 'access-1'",
    ),
    (
        "management-network-name-twice",
        {"management_networks": [OPERATORS, {**OPERATORS, "subnet": "192.0.2.0/24"}]},
        {"management_networks": [OPERATORS, {"name": "on-call", "subnet": "192.0.2.0/24"}]},
        "management_networks",
        "management network 'operators' is defined more than once",
    ),
    (
        "quota-default-below-the-largest-message",
        {"policies.quota.default": "34MB"},
        {"policies.quota.default": "35MB"},
        "policies.quota.default",
        "34.0MB is below policies.message_size_limit (35.0MB)",
    ),
    (
        "quota-default-above-maximum",
        {"policies.quota.default": "1001MB"},
        {"policies.quota.default": "1000MB"},
        "policies.quota.default",
        "is above policies.quota.maximum (1.0GB)",
    ),
    (
        "queue-interval-over-an-hour",
        {"policies.queue_interval": "61m"},
        {"policies.queue_interval": "60m"},
        "policies.queue_interval",
        "61m is longer than 1h",
    ),
    (
        "dns-ttl-read-as-zero",
        {"policies.dns_ttl": 2**31},
        {"policies.dns_ttl": 2**31 - 1},
        "policies.dns_ttl",
        "less than or equal to 2147483647",
    ),
    (
        "smtp-ttl-read-as-zero",
        {"policies.smtp_ttl": 2**31},
        {"policies.smtp_ttl": 2**31 - 1},
        "policies.smtp_ttl",
        "less than or equal to 2147483647",
    ),
    (
        # 99% is the model's last; the lab's quotas need half its stores, so 50% is its last.
        "headroom-leaves-nothing",
        {"policies.capacity_headroom_percent": 100},
        {"policies.capacity_headroom_percent": 50},
        "policies.capacity_headroom_percent",
        "less than or equal to 99",
    ),
    (
        "backup-server-is-a-replica",
        {
            "hosts[3].roles": ["store", "backup"],
            "services.backup.hosts": ["backup-1", "store-1b"],
            "services.store_pairs[1].backup": "store-1b",
        },
        {
            "hosts[6].roles": ["backup"],
            "services.backup.hosts": ["backup-1"],
            "services.store_pairs[1].backup": "backup-1",
        },
        "services.backup.hosts[1]",
        "host 'store-1b' is the replica of store pair 'cyrus-1'",
    ),
    (
        "backup-server-smaller-than-its-pairs",
        {"hosts[6].storage": SMALL_BACKUP},
        {"hosts[6].storage": {**SMALL_BACKUP, "disk_size": "1.5GB"}},
        "services.backup.hosts[0]",
        "total 2.5 GB, more than the 1.8 GB usable on 'backup-1' after 10% headroom",
    ),
    (
        "alias-to-the-hosts-domain",
        {"domains.managed[0].aliases.help": ["fanf2@lab.test"]},
        {"domains.managed[0].aliases.help": ["fanf2@hermes.lab.test"]},
        "domains.managed[0].aliases.help",
        "lab.test is the hosts' domain, which takes no mail",
    ),
    (
        "list-member-in-the-hosts-domain",
        {"services.lists.lists[0].members": ["dpc22", "root@lab.test"]},
        {"services.lists.lists[0].members": ["dpc22", "root@example.org"]},
        "services.lists.lists[0].members",
        "'root@lab.test': lab.test is the hosts' domain",
    ),
]
CASES += RELAY_AND_LIMIT_CASES


# DNSBLs: each with the answers that mean listed (RFC 5782: in 127.0.0.0/8, never 127.0.0.1),
# never an error answer (127.255.255.0/24: Spamhaus's 127.255.255.254 to a public resolver).
# The lab's DNSBL is dnsbl.lab.test; its DNS host forwards to 198.51.100.25, not a public resolver.
def _dnsbls(*listed: list[str], zone: str = "dnsbl.lab.test") -> dict[str, Any]:
    return {"policies.spam.dnsbls": [{"zone": zone, "listed": codes} for codes in listed]}


DNSBL_CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    (
        "dnsbl-error-code-counted-as-listed",
        _dnsbls(["127.0.0.2", "127.255.255.254"]),
        _dnsbls(["127.0.0.2", "127.255.254.255"]),
        "policies.spam.dnsbls[0].listed[1]",
        "127.255.255.254 is in 127.255.255.0/24, the answers DNSBLs give to queries they refuse",
    ),
    (
        "dnsbl-range-into-the-error-codes",
        _dnsbls(["127.0.0.2-127.255.255.0"]),
        _dnsbls(["127.0.0.2-127.0.0.255"]),
        "policies.spam.dnsbls[0].listed[0]",
        "127.0.0.2-127.255.255.0 reaches into 127.255.255.0/24",
    ),
    (
        "dnsbl-127.0.0.1-counted-as-listed",
        _dnsbls(["127.0.0.1"]),
        _dnsbls(["127.0.0.2"]),
        "policies.spam.dnsbls[0].listed[0]",
        "127.0.0.1 never means listed (RFC 5782)",
    ),
    (
        "dnsbl-range-over-127.0.0.1",
        _dnsbls(["127.0.0.0-127.0.0.3"]),
        _dnsbls(["127.0.0.2-127.0.0.3"]),
        "policies.spam.dnsbls[0].listed[0]",
        "127.0.0.0-127.0.0.3 includes 127.0.0.1",
    ),
    (
        "dnsbl-answer-outside-127/8",
        _dnsbls(["127.0.0.2", "128.0.0.2"]),
        _dnsbls(["127.0.0.2", "127.255.0.2"]),
        "policies.spam.dnsbls[0].listed[1]",
        "128.0.0.2 is outside 127.0.0.0/8",
    ),
    (
        "dnsbl-not-an-address",
        _dnsbls(["127.0.0.2..127.0.0.11"]),
        _dnsbls(["127.0.0.2-127.0.0.11"]),
        "policies.spam.dnsbls[0].listed[0]",
        "'127.0.0.2..127.0.0.11' is not an IPv4 address or a range",
    ),
    (
        "dnsbl-descending-range",
        _dnsbls(["127.0.0.11-127.0.0.2"]),
        _dnsbls(["127.0.0.2-127.0.0.11"]),
        "policies.spam.dnsbls[0].listed[0]",
        "127.0.0.11-127.0.0.2 is a descending range",
    ),
    (
        # 127.0.0.2-127.0.1.1 is 256 addresses, the most one DNSBL may list.
        "dnsbl-too-many-codes",
        _dnsbls(["127.0.0.2-127.0.1.1", "127.0.1.2"]),
        _dnsbls(["127.0.0.2-127.0.1.1"]),
        "policies.spam.dnsbls[0].listed",
        "257 addresses once the ranges are expanded, more than 256",
    ),
    (
        "dnsbl-code-twice",
        _dnsbls(["127.0.0.2-127.0.0.4", "127.0.0.4"]),
        _dnsbls(["127.0.0.2-127.0.0.4", "127.0.0.5"]),
        "policies.spam.dnsbls[0].listed",
        "127.0.0.4 is listed more than once",
    ),
    (
        "dnsbl-without-codes",
        _dnsbls([]),
        _dnsbls(["127.0.0.2"]),
        "policies.spam.dnsbls[0].listed",
        "at least 1 item",
    ),
    (
        "dnsbl-zone-twice",
        _dnsbls(["127.0.0.2"], ["127.0.0.3"]),
        {
            "policies.spam.dnsbls": [
                *_dnsbls(["127.0.0.2"])["policies.spam.dnsbls"],
                *_dnsbls(["127.0.0.3"], zone="bl.lab.test")["policies.spam.dnsbls"],
            ]
        },
        "policies.spam.dnsbls",
        "zone 'dnsbl.lab.test' is listed more than once",
    ),
    (
        # As written before DNSBLs had return codes: any answer meant listed.
        "dnsbl-bare-zone",
        {"policies.spam.dnsbls": ["dnsbl.lab.test"]},
        _dnsbls(["127.0.0.2"]),
        "policies.spam.dnsbls[0]",
        "'dnsbl.lab.test' needs the answers that mean listed",
    ),
    (
        "dnsbl-behind-a-public-resolver",
        {"services.dns.forwarders": ["9.9.9.9"]},
        {"services.dns.forwarders": ["9.9.9.9"], "policies.spam.dnsbls": []},
        "services.dns.forwarders[0]",
        "9.9.9.9 is Quad9's public resolver, and the DNSBLs (policies.spam.dnsbls: dnsbl.lab.test)",
    ),
    (
        "dnsbl-behind-a-public-ipv6-resolver",
        {"services.dns.forwarders": ["198.51.100.25", "2606:4700:4700::1111"]},
        {"services.dns.forwarders": ["198.51.100.25", "2001:db8::53"]},
        "services.dns.forwarders[1]",
        "2606:4700:4700::1111 is Cloudflare's public resolver",
    ),
    (
        # The default DNSBL (Spamhaus ZEN) is consulted unless the estate says dnsbls: [].
        "default-dnsbl-behind-a-public-resolver",
        {"services.dns.forwarders": ["8.8.8.8"], "policies.spam": {}},
        {"services.dns.forwarders": ["8.8.8.8"], "policies.spam": {"dnsbls": []}},
        "services.dns.forwarders[0]",
        "8.8.8.8 is Google's public resolver, and the DNSBLs (policies.spam.dnsbls: zen.spamhaus.org)",
    ),
]
CASES += DNSBL_CASES

# Listeners sharing a port on one host (hermes.listening): the lab's store-1a is hosts[2], a live
# member; access-1 (hosts[7]) runs webmail and lists, whose ports the proxy's do not meet.
_PROXY_HOSTS = ["ppsw-1", "ppsw-2"]
PORT_CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    (
        "proxy-on-a-store",
        {"hosts[2].roles": ["store", "proxy"], "services.proxy.hosts": [*_PROXY_HOSTS, "store-1a"]},
        {"hosts[7].roles": ["webmail", "lists", "proxy"], "services.proxy.hosts": [*_PROXY_HOSTS, "access-1"]},
        "hosts[2]",
        "would listen on TCP port 110 for proxy pop3 and store pop3",
    ),
    (
        "imaps-on-the-lmtp-port",
        {"policies.ports": {"imaps": {"port": listening.LMTP, "tls": "implicit"}}},
        {"policies.ports": {"imaps": {"port": 9993, "tls": "implicit"}}},
        "hosts[2]",
        f"would listen on TCP port {listening.LMTP} for store imaps and store lmtp",
    ),
]
CASES += PORT_CASES

RATE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, str]] = [
    (
        # RFC 5321 4.5.3.1.8: a server must take at least 100 recipients of a message.
        "fewer-recipients-than-rfc-5321",
        {"policies.recipients_per_message": 99},
        {"policies.recipients_per_message": 100},
        "policies.recipients_per_message",
        "greater than or equal to 100",
    ),
    (
        "recipient-rate-below-message-rate",
        {"policies.outgoing_rate_limit": {"messages": 100, "recipients": 99, "period": "1h"}},
        {"policies.outgoing_rate_limit": {"messages": 100, "recipients": 100, "period": "1h"}},
        "policies.outgoing_rate_limit",
        "recipients (99) is below messages (100)",
    ),
    (
        # A throttle that a mistyped password or two would trip.
        "login-throttle-below-three-failures",
        {"policies.failed_logins": {"failures": 2}},
        {"policies.failed_logins": {"failures": 3}},
        "policies.failed_logins.failures",
        "greater than or equal to 3",
    ),
    (
        "relay-host-rate-without-a-period",
        {"policies.relay_host_rate_limit": {"messages": 100, "period": "0h"}},
        {"policies.relay_host_rate_limit": {"messages": 100, "period": "1h"}},
        "policies.relay_host_rate_limit.period",
        "should match pattern",
    ),
    (
        "one-connection-per-client",
        {"policies.connections_per_client": 1},
        {"policies.connections_per_client": 2},
        "policies.connections_per_client",
        "greater than or equal to 2",
    ),
]
CASES += RATE_CASES


@pytest.mark.parametrize(("refused", "accepted", "path", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_beside_accepted(
    write_estate: WriteEstate, refused: dict[str, Any], accepted: dict[str, Any], path: str, words: str
) -> None:
    load_estate(write_estate(accepted))
    with pytest.raises(EstateError) as caught:
        load_estate(write_estate(refused))
    assert any(p.path == path and words in p.message for p in caught.value.problems), caught.value.problems


def test_pairs_sharing_a_backup_give_a_partition_one_path(write_estate: WriteEstate) -> None:
    # The lab's two pairs share backup-1.
    load_estate(write_estate({"services.store_pairs[1].partitions": [{"name": "default", "path": "spool"}]}))
    with pytest.raises(EstateError) as caught:
        load_estate(write_estate({"services.store_pairs[1].partitions": [{"name": "default", "path": "spool-2"}]}))
    assert [p.path for p in caught.value.problems] == ["services.store_pairs[1].partitions[0].path"]
    assert "same backup server 'backup-1'" in caught.value.problems[0].message


LAB_USERS = "fanf2\ndpc22\ncet1\nconfide\njmw41\nph10\nrjd4\n"


def test_no_quota_override_below_the_largest_message(write_estate: WriteEstate) -> None:
    # The lab's message size limit is 35MB: a mailbox with less could never take such a message.
    load_estate(write_estate(accounts=LAB_USERS.replace("rjd4", "rjd4 35MB")))
    with pytest.raises(EstateError) as caught:
        load_estate(write_estate(accounts=LAB_USERS.replace("rjd4", "rjd4 34MB")))
    assert [str(p) for p in caught.value.problems] == [
        "accounts: user 'rjd4' has quota 34000000 bytes, below policies.message_size_limit (35.0MB): "
        "the mailbox could not take one largest message"
    ]


def test_cyrus_identities_and_service_accounts_are_not_accounts(write_estate: WriteEstate) -> None:
    load_estate(write_estate(accounts=LAB_USERS + "anyone1\nrest-admin\n"))
    with pytest.raises(EstateError) as caught:
        load_estate(write_estate(accounts=LAB_USERS + "anyone\nanonymous\nrestadmin\n"))
    assert [p.message for p in caught.value.problems] == [
        "user 'anonymous' is a reserved name (Cyrus's identity of an anonymous login)",
        "user 'anyone' is a reserved name (the IMAP ACL identifier of every user, RFC 4314: rights given to it go to all)",
        "user 'restadmin' is a reserved name (Mailman's REST API administrator)",
    ]


def test_every_service_account_of_the_roles_is_reserved() -> None:
    # A role's *_user default is an identity it logs in or administers as: an account of that
    # name would be it (cyrus is an administrator on every store).
    users = {
        f"{defaults.parts[-3]}: {key}": value
        for defaults in sorted((PROJECT_ROOT / "roles").glob("*/defaults/main.yml"))
        for key, value in (yaml.safe_load(defaults.read_text()) or {}).items()
        if key.endswith("_user")
    }
    assert users, "the roles' service accounts were not found"
    # An empty default is filled per host by the renderer (cyrus_store's replication account,
    # one per pair: test_reserved_names_are_not_accounts).
    assert {where: user for where, user in users.items() if user and user not in RESERVED_NAMES} == {}


def test_reserved_names_are_not_accounts(write_estate: WriteEstate) -> None:
    # sync-cyrus-9 would be the replication account of a pair cyrus-9, which the lab has not.
    load_estate(write_estate(accounts=LAB_USERS + "postmast\nsync-cyrus-9\n"))
    with pytest.raises(EstateError) as caught:
        load_estate(write_estate(accounts=LAB_USERS + "postmaster\nsync-cyrus-2\n"))
    assert [str(p) for p in caught.value.problems] == [
        "accounts: user 'postmaster' is a reserved name (RFC 5321 requires it in every mail domain)",
        "accounts: user 'sync-cyrus-2' is a reserved name (the replication account of store pair 'cyrus-2')",
    ]


def _forwarding(write_estate: WriteEstate, table: str, name: str = "cam.lab.example") -> Path:
    estate = write_estate({"domains.forwarding": [{"name": name, "table": "cam.forwards"}]})
    (estate.parent / "cam.forwards").write_text(table)
    return estate


@pytest.mark.parametrize(
    ("refused", "accepted", "words"),
    [
        ("help: nobody\n", "help: fanf2\n", "target 'nobody' is not in the accounts file"),
        ("help: nobody@ucs.lab.test\n", "help: tony.finch@ucs.lab.test\n", "ucs.lab.test has no alias 'nobody'"),
        ("postmaster: fanf2\n", "postmasters: fanf2\n", "'postmaster' is a role address"),
        ("fanf2: fanf2@cam.lab.example\n", "fanf2: fanf2@admin.cam.example\n", "forwards to a forwarding domain"),
        ("fanf2: fanf2\nfanf2: dpc22\n", "fanf2: fanf2\ndpc22: dpc22\n", "local part 'fanf2' is listed twice"),
        ("Fanf2: fanf2\n", "fanf2: fanf2 # a comment\n", "is not 'local-part: target'"),
        # The lab's confide is a shared account (lab.accounts); forwarding to it is anyone's choice.
        ("confide: confide\n", "fanf2: confide\n", "'confide' is a shared account"),
    ],
    ids=["unknown-account", "unknown-alias", "role-address", "forwarding-loop", "twice", "syntax", "shared-account"],
)
def test_a_forwarding_table_leads_where_mail_is_read(write_estate: WriteEstate, refused: str, accepted: str, words: str) -> None:
    loaded = load_estate(_forwarding(write_estate, accepted))
    assert loaded.forwards["cam.lab.example"]
    with pytest.raises(EstateError) as caught:
        load_estate(_forwarding(write_estate, refused))
    assert any(p.path.startswith("domains.forwarding[0].table") and words in p.message for p in caught.value.problems), (
        caught.value.problems
    )


def test_a_forwarding_domain_is_outside_the_estates_zones_and_no_other_domain(write_estate: WriteEstate) -> None:
    load_estate(_forwarding(write_estate, "fanf2: fanf2\n", name="cam.lab.example"))
    for name, words in (("ucs.lab.test", "is already domains.managed[0].name"), ("cam.hermes.lab.test", "a zone of the estate")):
        with pytest.raises(EstateError) as caught:
            load_estate(_forwarding(write_estate, "fanf2: fanf2\n", name=name))
        assert any(p.path == "domains.forwarding[0].name" and words in p.message for p in caught.value.problems), (
            caught.value.problems
        )
