"""Deterministic synthetic estates: Hermes as of 2007, and larger ones for benchmarks.

``hermes_2007(scale=1)`` gives the estate the seeds describe (30 servers, 37,600
accounts with Cambridge-style usernames, 198 managed domains, RAID10 stores, a
backup server, grown by a shelf of disks as seed 003 says it was, so it holds the
quota of every pair); ``scale=10`` and ``scale=100`` multiply accounts, domains and
hosts. The same scale always gives the same files.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Iterator
from typing import Any

# Rough share of first-name initials, which decide a CRSID's first letter.
_INITIALS = dict(
    zip(
        string.ascii_lowercase,
        (
            6,
            5,
            7,
            6,
            4,
            2,
            3,
            4,
            1,
            10,
            3,
            4,
            9,
            2,
            1,
            4,
            0.2,
            6,
            8,
            4,
            0.2,
            1,
            2,
            0.1,
            0.3,
            0.3,
        ),
        strict=True,
    )
)
# Real names from the seeds, so aliases such as Tony.Finch -> fanf2 resolve.
_SEED_USERS = ("fanf2", "dpc22", "ph10", "confide", "cs-unix-support")
# Seed 001: "confide@hermes - shared accounts".
_SHARED_ACCOUNTS = frozenset({"confide"})
# The seeds' list: the Unix support team, run by dpc22.
_CS_UNIX_SUPPORT = {"name": "cs-unix-support", "owners": ["dpc22"], "members": ["dpc22", "fanf2", "ph10"]}
_DEPARTMENTS = (
    "ucs",
    "eng",
    "cup",
    "admin",
    "mole",
    "chem",
    "phy",
    "maths",
    "damtp",
    "dpmms",
    "statslab",
    "cl",
    "botany",
    "zoo",
    "geog",
    "hist",
    "law",
    "econ",
    "classics",
    "music",
    "arch",
    "pharm",
    "biochem",
    "path",
    "gen",
    "psychol",
    "crim",
    "educ",
    "divinity",
    "phil",
    "ling",
    "mml",
    "ames",
    "hps",
    "sps",
    "pdn",
    "vet",
    "med",
    "clinmed",
    "esc",
    "ast",
    "ioa",
    "bas",
    "spri",
    "fitzmuseum",
    "kettles",
    "ul",
    "careers",
    "jbs",
    "judge",
    "land",
    "poli",
    "sed",
    "cisl",
)
_COLLEGES = (
    "christs",
    "churchill",
    "clare",
    "clarehall",
    "corpus",
    "darwin",
    "downing",
    "emma",
    "fitz",
    "girton",
    "caius",
    "homerton",
    "hughes",
    "jesus",
    "kings",
    "lucy",
    "magd",
    "newhall",
    "newn",
    "pem",
    "pet",
    "quns",
    "robinson",
    "joh",
    "sel",
    "sid",
    "catz",
    "edmund",
    "trin",
    "trinhall",
    "wolfson",
)
# Seed 001's long-form domains: "quns / queens".
_LONG_FORMS = {"quns": ["queens"]}
MAIL_DOMAIN = "hermes.cam.ac.uk"


def usernames(count: int, seed: int = 2007) -> list[str]:
    """``count`` distinct CRSID-like usernames (initials and a number), sorted."""
    rng = random.Random(seed)
    letters, weights = list(_INITIALS), list(_INITIALS.values())
    names: set[str] = set(_SEED_USERS[:count])
    while len(names) < count:
        initials = rng.choices(letters, weights)[0] + "".join(rng.choices(string.ascii_lowercase, k=rng.choice((1, 2, 2, 3))))
        names.add(f"{initials}{rng.randint(1, 999)}")
    return sorted(names)


def _balanced_letter_ranges(names: list[str], pairs: list[str]) -> dict[str, str]:
    """Contiguous letter ranges, one per pair (while letters last), with similar user counts."""
    counts = dict.fromkeys(string.ascii_lowercase, 0)
    for name in names:
        counts[name[0]] += 1
    ranges: dict[str, str] = {}
    letters = list(string.ascii_lowercase)
    groups = min(len(pairs), len(letters))
    remaining = len(names)
    for index in range(groups):
        target = remaining / (groups - index)
        taken = [letters.pop(0)]
        # Keep one letter for each pair still to come.
        while letters and len(letters) > groups - index - 1 and sum(counts[x] for x in taken) + counts[letters[0]] / 2 <= target:
            taken.append(letters.pop(0))
        remaining -= sum(counts[x] for x in taken)
        ranges[taken[0] if len(taken) == 1 else f"{taken[0]}-{taken[-1]}"] = pairs[index]
    return ranges


def _domain_labels() -> Iterator[str]:
    """Departments' and colleges' labels, numbered once the real ones run out; ucs is the seeds'."""
    names = [*_DEPARTMENTS, *_COLLEGES]
    for serial in itertools.count():
        base = names[serial % len(names)]
        label = base if serial < len(names) else f"{base}{serial // len(names)}"
        if label != "ucs":
            yield label


def _domains(managed: int, routed: int, rng: random.Random, users: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The first ``routed`` departments run their own mail servers (eng, cup, admin, mole: seed
    001's "non-CS domains" and its @cam addresses that do not reach Hermes), the hubs their MX;
    the rest, ucs first, are managed mail domains of aliases."""
    labels = _domain_labels()

    def named(label: str) -> dict[str, Any]:
        long_forms = [f"{long}.cam.ac.uk" for long in _LONG_FORMS.get(label, [])]
        return {"name": f"{label}.cam.ac.uk", **({"long_forms": long_forms} if long_forms else {})}

    own_servers = [{**named(label), "servers": [f"mx.{label}.cam.ac.uk"]} for label in itertools.islice(labels, routed)]
    domains: list[dict[str, Any]] = [
        {
            "name": "ucs.cam.ac.uk",
            "aliases": {
                "Tony.Finch": ["fanf2"],
                "confidential": ["confide"],
                "unix-support": ["cs-unix-support@lists.cam.ac.uk"],
                "mail-support": ["dpc22", "fanf2"],
            },
        }
    ]
    for label in itertools.islice(labels, managed - 1):
        aliases = {role: sorted(rng.sample(users, rng.randint(1, 2))) for role in ("postmaster", "webmaster", "enquiries")}
        domains.append({**named(label), "aliases": aliases})
    return {"managed": domains, "routed": own_servers}


def _cam_forwards(users: list[str], routed: list[str], rng: random.Random) -> str:
    """@cam's table (seed 001: "fanf2@cam - forwarding set up on Jackdaw"): a few people send
    theirs to their department's own server, and people with no Hermes account at all have an
    @cam address that reaches their department ("Many @cam addresses do not redirect to Hermes
    accounts, e.g. users @admin or @mole")."""
    personal = sorted(set(users) - _SHARED_ACCOUNTS)
    away = {user: f"{user}@{rng.choice(routed)}" for user in rng.sample(personal, len(users) // 50)}
    known = set(users)
    elsewhere = {user: f"{user}@{rng.choice(routed)}" for user in usernames(len(users) // 20, seed=2010) if user not in known}
    lines = "".join(f"{local}: {target}\n" for local, target in sorted({**away, **elsewhere}.items()))
    return "# @cam forwarding (synthetic): local part: where its person chose; an account not listed, to itself\n" + lines


def hermes_2007(scale: int = 1) -> tuple[dict[str, Any], dict[str, str]]:
    """The estate (as data for the estate file) and the files beside it: file name -> text (the
    accounts, @cam's forwarding table)."""
    rng = random.Random(scale)
    name = "hermes-2007" if scale == 1 else f"hermes-2007-x{scale}"
    users = usernames(37_600 * scale)
    pair_count, mx_count, webmail_count = 8 * scale, 6 * scale, 3 * scale
    pairs = [f"cyrus-{i + 1}" for i in range(pair_count)]
    racks_per_site = 4 * scale
    sites = [
        {"name": site, "racks": [{"name": f"r{r + 1}", "power_feed": f"{site}-{'ab'[r % 2]}"} for r in range(racks_per_site)]}
        for site in ("new-museums", "west-cambridge")
    ]

    def host(name: str, site: int, rack: int, network: str, roles: list[str], **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "site": sites[site]["name"],
            "rack": f"r{rack % racks_per_site + 1}",
            "network": network,
            "roles": roles,
            **extra,
        }

    store = {"disks": 16, "disk_size": "300GB" if scale == 1 else f"{300 * scale}GB", "raid": "raid10"}
    hosts = [host(f"ppsw-{i + 1}", i % 2, i, "ppsw", ["mx", "proxy"]) for i in range(mx_count)]
    for i, pair in enumerate(pairs):
        hosts.append(host(f"{pair}a", 0, i, "store", ["store"], storage=store))
        hosts.append(host(f"{pair}b", 1, i + 1, "store", ["store"], storage=store))
    backups = [f"backup-{i + 1}" for i in range(scale)]
    # Seed 003's "8TB backup server" (24 disks, RAID6 with two hot spares) "before it grew another
    # shelf of disks": with that shelf (12 more) it holds the 9.7 TB of quota its pairs commit.
    backup = {"disks": 36, "disk_size": "400GB" if scale == 1 else f"{400 * scale}GB", "raid": "raid6", "hot_spares": 2}
    hosts += [host(name, 1, i, "store", ["backup"], storage=backup) for i, name in enumerate(backups)]
    hosts += [host(f"webmail-{i + 1}", i % 2, i, "access", ["webmail"]) for i in range(webmail_count)]
    hosts += [host(f"lists-{i + 1}", i % 2, i, "access", ["lists"]) for i in range(2 * scale)]
    # The first two DNS hosts also hold the directory (provider and replica), which keeps the
    # seeds' 30 servers: it is small, read on every login and written only by deploys.
    hosts += [host(f"dns-{i + 1}", i % 2, i, "access", ["dns", "directory"] if i < 2 else ["dns"]) for i in range(2 * scale)]

    def pool(prefix: str) -> list[str]:
        return [h["name"] for h in hosts if h["name"].startswith(prefix)]

    moved = sorted(rng.sample(users, len(users) // 1000 + 40 * (scale > 1) * scale))
    overrides = {user: pairs[rng.randrange(pair_count)] for user in moved}
    # Beyond 26 pairs letters run out; larger synthetic estates fill the rest by moving users.
    if pair_count > 26:
        extra = rng.sample(users, len(users) // 100)
        overrides.update({user: pairs[26 + rng.randrange(pair_count - 26)] for user in sorted(extra)})
    estate: dict[str, Any] = {
        "name": name,
        "description": "Hermes as the 2007 talks describe it: 37,600 accounts, 30 servers, RAID10 store pairs."
        if scale == 1
        else f"Synthetic estate: Hermes 2007 at {scale}x, for benchmarks.",
        "domains": {
            "hosts": "csi.cam.ac.uk",
            "mail": MAIL_DOMAIN,
            # Seed 003: 63 departmental email servers.
            **_domains(198 * scale, 63 * scale, rng, users),
            "forwarding": [{"name": "cam.ac.uk", "table": f"{name}.cam-forwards"}],
            "role_addresses": {"postmaster": users[:2], "abuse": users[2:4]},
        },
        "sites": sites,
        "networks": [
            {"name": "ppsw", "subnet": "172.16.8.0/24" if scale < 10 else "172.16.0.0/16"},
            {"name": "store", "subnet": "172.17.16.0/24" if scale < 10 else "172.17.0.0/16"},
            {"name": "access", "subnet": "172.18.24.0/24" if scale < 10 else "172.18.0.0/16"},
        ],
        # The Computing Service's operators' own network, none of the estate's.
        "management_networks": [{"name": "operations", "subnet": "172.19.8.0/24"}],
        "hosts": hosts,
        "services": {
            # The departmental mail servers (seed 003: 63 of them) send through ppswitch; their
            # network is none of the estate's own.
            "mx": {"hosts": pool("ppsw-"), "relay_networks": [{"name": "departmental-servers", "subnet": "172.20.0.0/16"}]},
            "store_pairs": [
                {"name": p, "master": f"{p}a", "replica": f"{p}b", "live": f"{p}a", "backup": backups[i % len(backups)]}
                for i, p in enumerate(pairs)
            ],
            "backup": {"hosts": backups},
            "proxy": {"hosts": pool("ppsw-")},
            "webmail": {"hosts": pool("webmail-")},
            "lists": {"hosts": pool("lists-"), "domain": "lists.cam.ac.uk", "lists": [_CS_UNIX_SUPPORT]},
            "dns": {"hosts": pool("dns-")},
            "directory": {"hosts": pool("dns-")[:2]},
        },
        "placement": {"letters": _balanced_letter_ranges(users, pairs), "overrides": overrides},
        "accounts": f"{name}.accounts",
        "policies": {
            "quota": {"default": "250MB", "maximum": "1GB", "warning_percent": 90},
            "message_size_limit": "25MB",
            # 2007's lists: Spamhaus SBL (127.0.0.2) and XBL (.4-.7), and MAPS RBL+ (.2-.4).
            "spam": {
                "dnsbls": [
                    {"zone": "sbl-xbl.spamhaus.org", "listed": ["127.0.0.2-127.0.0.7"]},
                    {"zone": "rbl-plus.mail-abuse.org", "listed": ["127.0.0.2-127.0.0.4"]},
                ],
                "spamassassin_threshold": 5.0,
            },
        },
    }
    upgraded = set(rng.sample(users, len(users) // 100))
    accounts = "".join(f"{u}{' 1GB' if u in upgraded else ''}{' shared' if u in _SHARED_ACCOUNTS else ''}\n" for u in users)
    routed = [domain["name"] for domain in estate["domains"]["routed"]]
    return estate, {
        f"{name}.accounts": "# Accounts of Hermes 2007 (synthetic usernames): username [quota override] [shared]\n" + accounts,
        f"{name}.cam-forwards": _cam_forwards(users, routed, rng),
    }
