"""One bad estate per invariant: each must fail with the offending field's path and the reason."""

from __future__ import annotations

from typing import Any

import pytest

from hermes.accounts import parse_accounts
from hermes.errors import EstateError
from hermes.loader import load_estate
from tests.conftest import WriteEstate

STORE = {"disks": 4, "disk_size": "10GB", "raid": "raid10"}


def _host(name: str, roles: list[str], rack: str = "r1", **extra: Any) -> dict[str, Any]:
    return {"name": name, "site": "lab", "rack": rack, "network": "service", "roles": roles, **extra}


# (id, edits to the lab estate, accounts file or None for the lab's, expected path, expected words)
CASES: list[tuple[str, dict[str, Any], str | None, str, str]] = [
    (
        "pair-same-host",
        {"services.store_pairs[0].replica": "store-1a"},
        None,
        "services.store_pairs[0]",
        "master and replica are the same host",
    ),
    ("pair-same-rack", {"hosts[3].rack": "r1"}, None, "services.store_pairs[0].replica", "shares rack 'r1'"),
    (
        "pair-same-feed",
        {"sites[0].racks[1].power_feed": "feed-a"},
        None,
        "services.store_pairs[0].replica",
        "shares power feed 'feed-a'",
    ),
    (
        "letter-unplaced",
        {"placement.letters": {"a-y": "cyrus-1"}},
        None,
        "placement.letters",
        "letters placed on no store pair: z",
    ),
    (
        "letter-twice",
        {"placement.letters": {"a-z": "cyrus-1", "q": "cyrus-1"}},
        None,
        "placement.letters",
        "letter 'q' is placed on more than one pair",
    ),
    (
        "letter-unknown-pair",
        {"placement.letters": {"a-z": "cyrus-9"}},
        None,
        "placement.letters.a-z",
        "store pair 'cyrus-9' is not defined",
    ),
    ("letter-bad-spec", {"placement.letters": {"a-Z": "cyrus-1"}}, None, "placement.letters", "is not a letter spec"),
    (
        "override-unknown-user",
        {"placement.overrides": {"nobody1": "cyrus-1"}},
        None,
        "placement.overrides.nobody1",
        "user 'nobody1' is not in the accounts file",
    ),
    (
        "override-unknown-pair",
        {"placement.overrides": {"fanf2": "cyrus-9"}},
        None,
        "placement.overrides.fanf2",
        "store pair 'cyrus-9' is not defined",
    ),
    ("duplicate-host", {"hosts[1].name": "ppsw-1"}, None, "hosts", "host name 'ppsw-1' is defined more than once"),
    (
        "duplicate-address",
        {"hosts[0].address": "10.251.0.53"},
        None,
        "hosts[8].address",
        "10.251.0.53 is already the address of host 'ppsw-1'",
    ),
    ("address-outside-network", {"hosts[8].address": "10.252.0.53"}, None, "hosts[8].address", "outside network service"),
    (
        "address-is-broadcast",
        {"hosts[8].address": "10.251.0.255"},
        None,
        "hosts[8].address",
        "network, broadcast or gateway address",
    ),
    ("address-is-gateway", {"hosts[8].address": "10.251.0.1"}, None, "hosts[8].address", "network, broadcast or gateway address"),
    (
        "network-full",
        {"networks[0].subnet": "10.251.0.0/29", "hosts[8].address": "10.251.0.5"},
        None,
        "hosts[3].network",
        "has no free address left",
    ),
    ("unknown-site", {"hosts[0].site": "elsewhere"}, None, "hosts[0].site", "site 'elsewhere' is not defined"),
    ("unknown-rack", {"hosts[0].rack": "r9"}, None, "hosts[0].rack", "rack 'r9' is not a rack of site 'lab'"),
    ("unknown-network", {"hosts[0].network": "dmz"}, None, "hosts[0].network", "network 'dmz' is not defined"),
    (
        "service-host-missing",
        {"services.webmail.hosts": ["webmail-9"]},
        None,
        "services.webmail.hosts[0]",
        "host 'webmail-9' is not defined",
    ),
    (
        "service-host-wrong-role",
        {"services.dns.hosts": ["access-1"]},
        None,
        "services.dns.hosts[0]",
        "host 'access-1' does not have the dns role",
    ),
    (
        "role-unused",
        {"hosts[8].roles": ["dns", "webmail"]},
        None,
        "hosts[8].roles",
        "has the webmail role but no service uses it",
    ),
    (
        "store-role-missing",
        {"hosts[2].roles": ["backup"]},
        None,
        "services.store_pairs[0].master",
        "does not have the store role",
    ),
    ("store-without-storage", {"hosts[2].storage": None}, None, "hosts[2].storage", "needs its RAID storage"),
    (
        "pair-backup-not-backup-host",
        {"services.store_pairs[0].backup": "access-1"},
        None,
        "services.store_pairs[0].backup",
        "does not have the backup role",
    ),
    (
        "pair-backup-missing",
        {"services.store_pairs[0].backup": "backup-9"},
        None,
        "services.store_pairs[0].backup",
        "host 'backup-9' is not defined",
    ),
    (
        "live-not-member",
        {"services.store_pairs[0].live": "backup-1"},
        None,
        "services.store_pairs[0]",
        "live host 'backup-1' is neither the master nor the replica",
    ),
    (
        "capacity",
        {"hosts[3].storage": {**STORE, "disk_size": "500MB"}},
        None,
        "services.store_pairs[0]",
        "more than the 0.9 GB usable on each member",
    ),
    ("quota-above-maximum", {}, "fanf2 2GB\n", "accounts", "above policies.quota.maximum"),
    ("accounts-bad-line", {}, "Fanf2\n", "accounts (lab.accounts:1)", "is not 'username [quota] [shared]'"),
    ("accounts-duplicate", {}, "fanf2\nfanf2\n", "accounts (lab.accounts:2)", "listed twice"),
    (
        "alias-unknown-user",
        {"domains.managed[0].aliases": {"someone": ["nobody1"]}},
        None,
        "domains.managed[0].aliases.someone",
        "target 'nobody1' is not in the accounts file",
    ),
    (
        "managed-is-mail-domain",
        {"domains.managed[0].name": "hermes.lab.test"},
        None,
        "domains.managed[0].name",
        "is the accounts' or the lists' domain",
    ),
    ("unknown-field", {"services.mx.relay": True}, None, "services.mx.relay", "unknown field"),
    ("missing-field", {"services.mx": {"relay_networks": []}}, None, "services.mx.hosts", "required field is missing"),
    ("bad-subnet", {"networks[0].subnet": "10.251.0.1/24"}, None, "networks[0].subnet", "has host bits set"),
    ("bad-raid", {"hosts[2].storage": {**STORE, "raid": "raid7"}}, None, "hosts[2].storage.raid", "Input should be"),
    ("too-few-disks", {"hosts[2].storage": {**STORE, "disks": 3}}, None, "hosts[2].storage", "raid10 needs at least 4"),
    ("bad-size", {"policies.message_size_limit": "huge"}, None, "policies.message_size_limit", "could not parse"),
    ("port-clash", {"policies.ports": {"imap": {"port": 25, "tls": "starttls"}}}, None, "policies.ports", "both use port 25"),
    (
        "smtp-auth",
        {"policies.ports": {"smtp": {"port": 25, "tls": "starttls", "auth": True}}},
        None,
        "policies.ports",
        "cannot require auth",
    ),
    ("bad-host-name", {"hosts[0].name": "PPSW_1"}, None, "hosts[0].name", "should match pattern"),
    (
        "spam-thresholds",
        {"policies.spam": {"spamassassin_threshold": 5, "reject_threshold": 4}},
        None,
        "policies.spam",
        "reject_threshold must be above",
    ),
]


@pytest.mark.parametrize(("edits", "accounts", "path", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_estate_names_field_and_reason(
    write_estate: WriteEstate, edits: dict[str, Any], accounts: str | None, path: str, words: str
) -> None:
    estate = write_estate(edits, **({"accounts": accounts} if accounts is not None else {}))
    with pytest.raises(EstateError) as raised:
        load_estate(estate)
    matching = [p for p in raised.value.problems if p.path == path and words in p.message]
    assert matching, f"no problem at {path!r} saying {words!r}; got: {[str(p) for p in raised.value.problems]}"


def test_every_problem_is_reported_at_once(write_estate: WriteEstate) -> None:
    estate = write_estate({"hosts[0].site": "elsewhere", "hosts[1].network": "dmz", "services.dns.hosts": ["access-1"]})
    with pytest.raises(EstateError) as raised:
        load_estate(estate)
    assert {p.path for p in raised.value.problems} >= {"hosts[0].site", "hosts[1].network", "services.dns.hosts[0]"}


def test_lab_estate_is_valid(write_estate: WriteEstate) -> None:
    loaded = load_estate(write_estate())
    assert loaded.estate.name == "lab"
    assert set(loaded.placement.values()) == {"cyrus-1", "cyrus-2"}


def test_override_moves_a_user(write_estate: WriteEstate) -> None:
    # The lab splits the letters a-m / n-z and moves fanf2 (an f) to the second pair.
    loaded = load_estate(write_estate())
    assert loaded.placement["fanf2"] == "cyrus-2"
    assert loaded.placement["dpc22"] == "cyrus-1"
    assert loaded.placement["rjd4"] == "cyrus-2"


def test_a_shared_account_is_marked_after_its_quota() -> None:
    accounts, shared, problems = parse_accounts("confide shared\nteam 1GB shared\nfanf2 1GB\n", "x.accounts")
    assert accounts == {"confide": None, "team": 1_000_000_000, "fanf2": 1_000_000_000}
    assert (shared, problems) == ({"confide", "team"}, [])
    _, shared, problems = parse_accounts("team shared 1GB\n", "x.accounts")
    assert not shared and [p.path for p in problems] == ["accounts (x.accounts:1)"]
