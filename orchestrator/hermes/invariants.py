"""Rules that span several parts of an estate, checked after field validation.

Each check is a pure function returning the problems it finds, so every problem
in an estate is reported at once. A store pair's members sharing a rack or a
power feed is an error, not a warning: Cambridge lost power to every live store
at once, and a pair is only a hot spare if it survives what takes the master.
"""

from __future__ import annotations

import itertools
import string
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping

import netaddr

from hermes.accounts import Accounts
from hermes.capacity import backup_capacity, pair_capacity
from hermes.credentials import replication_user
from hermes.errors import Problem
from hermes.listening import service_ports
from hermes.model import Estate, Role, letters_of
from hermes.model.domains import DepartmentDomain, ForwardingDomain, RoleAddresses, qualified
from hermes.model.services import LIST_SUFFIXES

Check = Callable[[Estate, Accounts], list[Problem]]


def _duplicates(names: Iterable[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


def _unique(path: str, names: Iterable[str], what: str) -> list[Problem]:
    return [Problem(path, f"{what} {name!r} is defined more than once") for name in _duplicates(names)]


def unique_names(estate: Estate, accounts: Accounts) -> list[Problem]:
    return [
        *_unique("sites", (s.name for s in estate.sites), "site"),
        *_unique("networks", (n.name for n in estate.networks), "network"),
        *_unique("hosts", (h.name for h in estate.hosts), "host name"),
        *_unique("services.store_pairs", (p.name for p in estate.services.store_pairs), "store pair"),
        *_unique("domains.managed", (d.name for d in estate.domains.managed), "managed domain"),
        *_unique("domains.routed", (d.name for d in estate.domains.routed), "routed domain"),
        *_unique("services.mx.relay_networks", (r.name for r in estate.services.mx.relay_networks), "relay network"),
        *_unique("management_networks", (n.name for n in estate.management_networks), "management network"),
    ]


def host_locations(estate: Estate, accounts: Accounts) -> list[Problem]:
    sites = {site.name: {rack.name for rack in site.racks} for site in estate.sites}
    networks = {network.name for network in estate.networks}
    problems = []
    for index, host in enumerate(estate.hosts):
        if host.site not in sites:
            problems.append(Problem(f"hosts[{index}].site", f"site {host.site!r} is not defined in sites"))
        elif host.rack not in sites[host.site]:
            problems.append(Problem(f"hosts[{index}].rack", f"rack {host.rack!r} is not a rack of site {host.site!r}"))
        if host.network not in networks:
            problems.append(Problem(f"hosts[{index}].network", f"network {host.network!r} is not defined in networks"))
        if (Role.STORE in host.roles or Role.BACKUP in host.roles) and host.storage is None:
            problems.append(Problem(f"hosts[{index}].storage", "a store or backup host needs its RAID storage described"))
    return problems


def _service_hosts(estate: Estate) -> list[tuple[str, str, Role]]:
    """(field path, host name, role the host must have) for every host a service names."""
    services = estate.services
    named: list[tuple[str, str, Role]] = []
    for field, role in (
        ("mx", Role.MX),
        ("backup", Role.BACKUP),
        ("proxy", Role.PROXY),
        ("webmail", Role.WEBMAIL),
        ("lists", Role.LISTS),
        ("dns", Role.DNS),
        ("directory", Role.DIRECTORY),
    ):
        group = getattr(services, field)
        named.extend((f"services.{field}.hosts[{i}]", name, role) for i, name in enumerate(group.hosts))
    for i, pair in enumerate(services.store_pairs):
        path = f"services.store_pairs[{i}]"
        named.append((f"{path}.master", pair.master, Role.STORE))
        named.append((f"{path}.replica", pair.replica, Role.STORE))
        named.append((f"{path}.backup", pair.backup, Role.BACKUP))
    return named


def service_hosts(estate: Estate, accounts: Accounts) -> list[Problem]:
    hosts = {host.name: host for host in estate.hosts}
    problems = []
    for path, name, role in _service_hosts(estate):
        if name not in hosts:
            problems.append(Problem(path, f"host {name!r} is not defined in hosts"))
        elif role not in hosts[name].roles:
            problems.append(Problem(path, f"host {name!r} does not have the {role} role"))
    backups = set(estate.services.backup.hosts)
    for i, pair in enumerate(estate.services.store_pairs):
        if pair.backup in hosts and pair.backup not in backups:
            problems.append(Problem(f"services.store_pairs[{i}].backup", f"host {pair.backup!r} is not in services.backup.hosts"))
    served = {(name, role) for _, name, role in _service_hosts(estate)}
    for index, host in enumerate(estate.hosts):
        for role in host.roles:
            if (host.name, role) not in served:
                problems.append(
                    Problem(f"hosts[{index}].roles", f"host {host.name!r} has the {role} role but no service uses it")
                )
    for path, names in (
        ("services.mx.hosts", estate.services.mx.hosts),
        ("services.backup.hosts", backups),
        ("services.directory.hosts", estate.services.directory.hosts),
    ):
        problems.extend(Problem(path, f"host {name!r} is listed more than once") for name in _duplicates(names))
    return problems


def store_pairs(estate: Estate, accounts: Accounts) -> list[Problem]:
    hosts = {host.name: host for host in estate.hosts}
    racks = {(site.name, rack.name): rack.power_feed for site in estate.sites for rack in site.racks}
    problems = []
    members = Counter(name for pair in estate.services.store_pairs for name in pair.members)
    for i, pair in enumerate(estate.services.store_pairs):
        path = f"services.store_pairs[{i}]"
        for field, name in (("master", pair.master), ("replica", pair.replica)):
            if members[name] > 1:
                problems.append(Problem(f"{path}.{field}", f"host {name!r} belongs to more than one store pair"))
        master, replica = hosts.get(pair.master), hosts.get(pair.replica)
        if master is None or replica is None:
            continue
        if (master.site, master.rack) == (replica.site, replica.rack):
            problems.append(
                Problem(f"{path}.replica", f"{pair.replica!r} shares rack {master.rack!r} with master {pair.master!r}")
            )
        feed = racks.get((master.site, master.rack))
        if feed is not None and feed == racks.get((replica.site, replica.rack)):
            problems.append(
                Problem(f"{path}.replica", f"{pair.replica!r} shares power feed {feed!r} with master {pair.master!r}")
            )
        for field, name in (("master", pair.master), ("replica", pair.replica)):
            host = hosts.get(name)
            if host is not None and Role.MX in host.roles:
                # A hub faces the Internet and checks every account's password; a store holds its pair's.
                problems.append(Problem(f"{path}.{field}", f"host {name!r} is a mail hub (mx) and cannot be a store"))
    return problems


def backup_servers(estate: Estate, accounts: Accounts) -> list[Problem]:
    """A backup server is no pair's master or replica: one machine's failure would take a copy
    of the pair's mail and its backup at once. Seed 003 counts six copies on three machines and
    tape (each member's RAID holds two, the backup server one, tape one)."""
    member = {
        name: (pair.name, field)
        for pair in estate.services.store_pairs
        for field, name in (("master", pair.master), ("replica", pair.replica))
    }
    return [
        Problem(
            f"services.backup.hosts[{i}]",
            f"host {name!r} is the {member[name][1]} of store pair {member[name][0]!r}: a backup server is no pair's member",
        )
        for i, name in enumerate(estate.services.backup.hosts)
        if name in member
    ]


def backup_partitions(estate: Estate, accounts: Accounts) -> list[Problem]:
    """A backup server holds the partitions of every pair it backs up: one name, one directory."""
    problems = []
    seen: dict[tuple[str, str], tuple[str, str]] = {}  # (backup host, partition) -> (pair, path)
    for i, pair in enumerate(estate.services.store_pairs):
        for j, partition in enumerate(pair.partitions):
            first = seen.setdefault((pair.backup, partition.name), (pair.name, partition.path))
            if first[1] != partition.path:
                problems.append(
                    Problem(
                        f"services.store_pairs[{i}].partitions[{j}].path",
                        f"partition {partition.name!r} is {first[1]!r} in pair {first[0]!r}, which has the same "
                        f"backup server {pair.backup!r}: give it the same path or another name",
                    )
                )
    return problems


def directory_hosts(estate: Estate, accounts: Accounts) -> list[Problem]:
    """The directory holds every account's password hash: never on an Internet-facing hub."""
    hubs = {host.name for host in estate.hosts if Role.MX in host.roles}
    return [
        Problem(f"services.directory.hosts[{i}]", f"host {name!r} is a mail hub (mx) and cannot hold the directory")
        for i, name in enumerate(estate.services.directory.hosts)
        if name in hubs
    ]


def port_clashes(estate: Estate, accounts: Accounts) -> list[Problem]:
    """Two listeners of one host cannot share a port: the second would never start."""
    problems = []
    for index, host in enumerate(estate.hosts):
        wanted: dict[int, list[str]] = defaultdict(list)
        for port in service_ports(estate, host.name):
            wanted[port.port].append(f"{port.service} {port.listener}")
        problems += [
            Problem(
                f"hosts[{index}]",
                f"host {host.name!r} would listen on TCP port {port} for {' and '.join(listeners)}: only one of them can",
            )
            for port, listeners in sorted(wanted.items())
            if len(listeners) > 1
        ]
    return problems


def _overlap(a: netaddr.IPNetwork, b: netaddr.IPNetwork) -> bool:
    return bool(a.version == b.version and a.first <= b.last and b.first <= a.last)


def relay_networks(estate: Estate, accounts: Accounts) -> list[Problem]:
    """Relay networks are client networks: one that overlaps the estate's own networks (where its
    stores and webmail hosts are, or will be, addressed) must say so, and only such a one."""
    problems = []
    for i, relay in enumerate(estate.services.mx.relay_networks):
        path = f"services.mx.relay_networks[{i}]"
        overlapped = [n.name for n in estate.networks if _overlap(relay.subnet, n.subnet)]
        if overlapped and not relay.covers_estate_hosts:
            problems.append(
                Problem(
                    f"{path}.subnet",
                    f"{relay.subnet} overlaps the estate's network {', '.join(overlapped)}: the estate's own hosts there "
                    "would relay without authenticating; set covers_estate_hosts: true if that is meant",
                )
            )
        elif relay.covers_estate_hosts and not overlapped:
            problems.append(
                Problem(f"{path}.covers_estate_hosts", f"{relay.subnet} overlaps none of the estate's networks: remove it")
            )
    return problems


# The well-known public resolvers (Google, Cloudflare, Quad9, OpenDNS). A DNSBL operator cannot
# tell one of their users from another, so it answers their queries with an error code (Spamhaus:
# 127.255.255.254) or not at all.
PUBLIC_RESOLVERS = {
    netaddr.IPAddress(address): operator
    for operator, addresses in (
        ("Google", ("8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844")),
        ("Cloudflare", ("1.1.1.1", "1.0.0.1", "2606:4700:4700::1111", "2606:4700:4700::1001")),
        ("Quad9", ("9.9.9.9", "149.112.112.112", "2620:fe::fe", "2620:fe::9")),
        ("OpenDNS", ("208.67.222.222", "208.67.220.220")),
    )
    for address in addresses
}


def dnsbl_resolvers(estate: Estate, accounts: Accounts) -> list[Problem]:
    """The hubs look the DNSBLs up through the estate's DNS hosts: those must not forward to a
    public resolver, or every lookup is refused (and an error answer may read as listed)."""
    dnsbls = estate.policies.spam.dnsbls
    if not dnsbls:
        return []
    zones = ", ".join(d.zone for d in dnsbls)
    problems = []
    for i, address in enumerate(estate.services.dns.forwarders):
        plain = address.ipv4() if address.version == 6 and address.is_ipv4_mapped() else address
        if plain in PUBLIC_RESOLVERS:
            problems.append(
                Problem(
                    f"services.dns.forwarders[{i}]",
                    f"{address} is {PUBLIC_RESOLVERS[plain]}'s public resolver, and the DNSBLs (policies.spam.dnsbls: "
                    f"{zones}) answer public resolvers with error codes or not at all: resolve from the root (no "
                    "forwarders) or forward to the organisation's own resolvers",
                )
            )
    return problems


def placement(estate: Estate, accounts: Accounts) -> list[Problem]:
    pairs = {pair.name for pair in estate.services.store_pairs}
    problems = []
    owners: dict[str, list[str]] = {letter: [] for letter in string.ascii_lowercase}
    for spec, pair in estate.placement.letters.items():
        path = f"placement.letters.{spec}"
        if pair not in pairs:
            problems.append(Problem(path, f"store pair {pair!r} is not defined in services.store_pairs"))
        for letter in letters_of(spec):
            owners[letter].append(pair)
    unplaced = [letter for letter, placed in owners.items() if not placed]
    if unplaced:
        problems.append(Problem("placement.letters", f"letters placed on no store pair: {', '.join(unplaced)}"))
    for letter, placed in owners.items():
        if len(placed) > 1:
            problems.append(
                Problem("placement.letters", f"letter {letter!r} is placed on more than one pair: {', '.join(placed)}")
            )
    for user, pair in estate.placement.overrides.items():
        path = f"placement.overrides.{user}"
        if user not in accounts:
            problems.append(Problem(path, f"user {user!r} is not in the accounts file"))
        if pair not in pairs:
            problems.append(Problem(path, f"store pair {pair!r} is not defined in services.store_pairs"))
    return problems


def quotas(estate: Estate, accounts: Accounts) -> list[Problem]:
    """Every quota, the default's and each override, lies between the largest message (a
    mailbox with less could never take it) and the maximum."""
    maximum, floor = estate.policies.quota.maximum, estate.policies.message_size_limit

    def outside(size: int) -> str | None:
        if size > maximum:
            return f"above policies.quota.maximum ({maximum.human_readable(decimal=True)})"
        if size < floor:
            return (
                f"below policies.message_size_limit ({floor.human_readable(decimal=True)}): "
                "the mailbox could not take one largest message"
            )
        return None

    default = estate.policies.quota.default
    problems = []
    if (why := outside(default)) is not None:
        problems.append(Problem("policies.quota.default", f"{default.human_readable(decimal=True)} is {why}"))
    problems += [
        Problem("accounts", f"user {user!r} has quota {quota} bytes, {why}")
        for user, quota in accounts.items()
        if quota is not None and (why := outside(quota)) is not None
    ]
    return problems


# Names no account may take, each with why: the role addresses every mail domain answers
# (RFC 2142; RFC 5321 4.5.1 for postmaster), the bounce sender and root, the identities Cyrus
# gives every store (roles/cyrus_store: its administrator, and the ACL identifiers of everyone
# and of an anonymous login; each pair's replication account is refused below) and Mailman's REST administrator
# (roles/mailman). A test checks every *_user default of the roles is here.
RESERVED_NAMES = {
    **dict.fromkeys(RoleAddresses.model_fields, "RFC 2142 role address, answered in every mail domain"),
    "postmaster": "RFC 5321 requires it in every mail domain",
    "mailer-daemon": "the sender of bounces",
    "root": "the system administrator",
    "cyrus": "the Cyrus administrator on every store",
    "anyone": "the IMAP ACL identifier of every user, RFC 4314: rights given to it go to all",
    "anonymous": "Cyrus's identity of an anonymous login",
    "restadmin": "Mailman's REST API administrator",
}


def reserved_names(estate: Estate, accounts: Accounts) -> list[Problem]:
    reserved = dict(RESERVED_NAMES)
    for pair in estate.services.store_pairs:
        reserved[replication_user(pair.name)] = f"the replication account of store pair {pair.name!r}"
    return [
        Problem("accounts", f"user {user!r} is a reserved name ({reserved[user]})")
        for user in sorted(accounts.keys() & reserved.keys())
    ]


def domain_roles(estate: Estate, accounts: Accounts) -> list[Problem]:
    """The hosts', accounts' and lists' domains are three different domains."""
    domains = estate.domains
    problems = []
    if domains.mail == domains.hosts:
        problems.append(Problem("domains.mail", f"{domains.mail!r} is also the hosts' domain (domains.hosts)"))
    lists = estate.services.lists.domain
    for field, other in (("domains.mail", domains.mail), ("domains.hosts", domains.hosts)):
        if lists == other:
            problems.append(Problem("services.lists.domain", f"{lists!r} is also {field}: every address there would be a list"))
    for i, domain in enumerate(domains.managed):
        if domain.name == domains.hosts:
            problems.append(Problem(f"domains.managed[{i}].name", f"{domain.name!r} is the hosts' domain (domains.hosts)"))
    return problems + routed_domains(estate)


def _zone_of(name: str, zones: Iterable[str]) -> str | None:
    """The innermost of ``zones`` that ``name`` is in, if any."""
    holding = [zone for zone in zones if name == zone or name.endswith(f".{zone}")]
    return max(holding, key=len, default=None)


def routed_domains(estate: Estate) -> list[Problem]:
    """A routed or forwarding domain, and a routed domain's servers, are outside every zone the
    estate's DNS serves. The domain's MX records are the department's (or the University's) to
    publish, which they cannot do in the estate's zones; a server there would be an estate host
    (the hubs relaying to themselves) or a name that does not exist."""
    domains = estate.domains
    own = {
        domains.hosts: "the hosts' domain (domains.hosts)",
        domains.mail: "the accounts' domain (domains.mail)",
        estate.services.lists.domain: "the lists' domain (services.lists.domain)",
        **{
            name: "a managed domain (domains.managed): its addresses are aliases the hubs resolve"
            for d in domains.managed
            for name in d.names
        },
    }
    outside = itertools.chain(
        _names("routed", domains.routed), _long_forms("routed", domains.routed), _names("forwarding", domains.forwarding)
    )
    problems = []
    for path, name in outside:
        if name in own:
            problems.append(Problem(path, f"{name!r} is {own[name]}"))
        elif (zone := _zone_of(name, own)) is not None:
            why = "its MX records would be the estate's to publish"
            problems.append(Problem(path, f"{name!r} is in {zone!r}, a zone of the estate: {why}"))
    for i, domain in enumerate(domains.routed):
        for j, server in enumerate(domain.servers):
            if (zone := _zone_of(server, own)) is not None:
                problems.append(
                    Problem(
                        f"domains.routed[{i}].servers[{j}]",
                        f"{server!r} is in {zone!r}, a zone of the estate: a routed domain's servers are the department's own",
                    )
                )
    return problems


def _names(kind: str, listed: Iterable[DepartmentDomain | ForwardingDomain]) -> Iterator[tuple[str, str]]:
    """(path, name) of each of the managed, routed or forwarding domains."""
    for i, domain in enumerate(listed):
        yield f"domains.{kind}[{i}].name", domain.name


def _long_forms(kind: str, listed: Iterable[DepartmentDomain]) -> Iterator[tuple[str, str]]:
    """(path, long form) of each long form of the managed or routed domains."""
    for i, domain in enumerate(listed):
        for j, name in enumerate(domain.long_forms):
            yield f"domains.{kind}[{i}].long_forms[{j}]", name


def _managed_aliases(estate: Estate) -> dict[str, dict[str, list[str]]]:
    """Every name of each managed domain, its long forms too -> lower-cased local part -> targets."""
    return {
        name: {local.lower(): targets for local, targets in d.aliases.items()} for d in estate.domains.managed for name in d.names
    }


def long_forms(estate: Estate, accounts: Accounts) -> list[Problem]:
    """A long form, or a forwarding domain, is a name no other domain of the estate has: the
    hubs would not know which one it is."""
    domains = estate.domains
    named = {
        domains.hosts: "domains.hosts",
        domains.mail: "domains.mail",
        estate.services.lists.domain: "services.lists.domain",
        **{name: path for path, name in itertools.chain(_names("managed", domains.managed), _names("routed", domains.routed))},
    }
    others = itertools.chain(
        _long_forms("managed", domains.managed), _long_forms("routed", domains.routed), _names("forwarding", domains.forwarding)
    )
    problems = []
    for path, name in others:
        if name in named:
            problems.append(Problem(path, f"{name!r} is already {named[name]}"))
        else:
            named[name] = path
    return problems


def aliases(estate: Estate, accounts: Accounts) -> list[Problem]:
    """Every alias target exists, and no chain of aliases comes back to where it started."""
    managed = _managed_aliases(estate)
    canonical = {name: d.name for d in estate.domains.managed for name in d.names}
    problems = []
    for i, domain in enumerate(estate.domains.managed):
        if domain.name in (estate.domains.mail, estate.services.lists.domain):
            problems.append(Problem(f"domains.managed[{i}].name", f"{domain.name!r} is the accounts' or the lists' domain"))
        for local, targets in domain.aliases.items():
            path = f"domains.managed[{i}].aliases.{local}"
            problems.extend(_missing_targets(estate, accounts, managed, path, targets))
            if _loops(managed, f"{local.lower()}@{domain.name}", canonical):
                problems.append(Problem(path, "its targets lead back to it (an alias loop)"))
    roles = estate.domains.role_addresses
    for role in type(roles).model_fields:
        targets = getattr(roles, role) or []
        problems.extend(_missing_targets(estate, accounts, managed, f"domains.role_addresses.{role}", targets))
        # A role address that leads to a role address would loop in every domain.
        problems.extend(
            Problem(f"domains.role_addresses.{role}", f"target {t!r} is itself a role address")
            for t in targets
            if t.partition("@")[0].lower() in type(roles).model_fields
        )
    return problems


def _missing_targets(
    estate: Estate, accounts: Accounts, managed: Mapping[str, Mapping[str, list[str]]], path: str, targets: list[str]
) -> list[Problem]:
    """Problems of alias targets that lead nowhere: an unknown user, managed alias or list, or
    the hosts' domain, which takes no mail (it has no MX, and the hubs do not accept it)."""
    problems = []
    for target in targets:
        user, _, where = target.partition("@")
        if not where and target not in accounts:
            problems.append(Problem(path, f"target {target!r} is not in the accounts file"))
        elif where == estate.domains.hosts:
            problems.append(Problem(path, f"target {target!r}: {where} is the hosts' domain, which takes no mail"))
        elif where == estate.domains.mail and user not in accounts:
            problems.append(Problem(path, f"target {target!r}: {user!r} is not in the accounts file"))
        elif where in managed and user.lower() not in managed[where]:
            problems.append(Problem(path, f"target {target!r}: {where} has no alias {user!r}"))
        elif where == estate.services.lists.domain and _list_of(user.lower()) not in _list_names(estate):
            problems.append(Problem(path, f"target {target!r}: {where} has no list {_list_of(user.lower())!r}"))
    return problems


def _list_names(estate: Estate) -> set[str]:
    return {mailing_list.name for mailing_list in estate.services.lists.lists}


def _list_of(local_part: str) -> str:
    """The list an address of the lists' domain belongs to: its local part less a Mailman suffix."""
    for suffix in LIST_SUFFIXES:
        base, found, rest = local_part.partition(suffix)
        if found and (not rest or rest.startswith("+")):
            return base
    return local_part


def mailing_lists(estate: Estate, accounts: Accounts) -> list[Problem]:
    """Each list once, none hidden behind a role address (postmaster@ is never a list), and
    every owner and member someone mail can reach: an account, an alias, another list."""
    lists = estate.services.lists.lists
    problems = _unique("services.lists.lists", (m.name for m in lists), "list")
    roles = set(type(estate.domains.role_addresses).model_fields)
    problems += [
        Problem(f"services.lists.lists[{i}].name", f"{m.name!r} is a role address, answered before any list")
        for i, m in enumerate(lists)
        if m.name in roles
    ]
    managed = _managed_aliases(estate)
    for i, mailing_list in enumerate(lists):
        for field in ("owners", "members"):
            path = f"services.lists.lists[{i}].{field}"
            targets: list[str] = getattr(mailing_list, field)
            problems.extend(_missing_targets(estate, accounts, managed, path, targets))
            addresses = [qualified(t, estate.domains.mail).lower() for t in targets]
            problems.extend(Problem(path, f"{a!r} is listed more than once") for a in _duplicates(addresses))
            problems.extend(
                Problem(path, f"{t!r} is an address of this list: its mail would come back to it (a loop)")
                for t in targets
                if t.partition("@")[2] == estate.services.lists.domain
                and _list_of(t.partition("@")[0].lower()) == mailing_list.name
            )
    if lists and not estate.policies.ports.smtp.enabled:
        problems.append(
            Problem("policies.ports.smtp.enabled", "Mailman sends the lists' mail through the hubs' smtp port: enable it")
        )
    return problems


def forwarding_tables(
    estate: Estate, accounts: Accounts, shared: frozenset[str], forwards: Mapping[str, Mapping[str, str]]
) -> list[Problem]:
    """Every forwarding table's target is somewhere mail is read: an account, an existing alias
    or list, an outside address; never another forwarding address (mail could go round). No
    table answers for a role address, which the estate's own role addresses answer, or gives a
    shared account an address (seed 001: they "do not have an equivalent @cam address")."""
    managed = _managed_aliases(estate)
    forwarding = {d.name for d in estate.domains.forwarding}
    roles = set(type(estate.domains.role_addresses).model_fields)
    problems = []
    for i, domain in enumerate(estate.domains.forwarding):
        path = f"domains.forwarding[{i}].table"
        for local, target in forwards.get(domain.name, {}).items():
            if local in roles:
                problems.append(Problem(path, f"{local!r} is a role address, answered by domains.role_addresses"))
            if local in shared:
                problems.append(Problem(path, f"{local!r} is a shared account (accounts): it has no address here"))
            if target.partition("@")[2] in forwarding:
                problems.append(Problem(path, f"{local}: {target} forwards to a forwarding domain: mail could go round"))
            problems.extend(_missing_targets(estate, accounts, managed, f"{path} ({local})", [target]))
    return problems


def _loops(managed: Mapping[str, Mapping[str, list[str]]], start: str, canonical: Mapping[str, str]) -> bool:
    """Whether following managed-domain aliases from ``start`` reaches ``start`` again; a long
    form is its domain (``canonical``: every name -> the domain's name)."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        local, _, domain = stack.pop().partition("@")
        for target in managed.get(domain, {}).get(local, []):
            user, _, where = target.partition("@")
            address = f"{user.lower()}@{canonical.get(where, where)}"
            if address == start:
                return True
            if where in managed and address not in seen:
                seen.add(address)
                stack.append(address)
    return False


CHECKS: tuple[Check, ...] = (
    unique_names,
    host_locations,
    service_hosts,
    store_pairs,
    backup_servers,
    backup_partitions,
    directory_hosts,
    port_clashes,
    relay_networks,
    dnsbl_resolvers,
    mailing_lists,
    placement,
    quotas,
    reserved_names,
    domain_roles,
    long_forms,
    aliases,
)


def check_capacity(estate: Estate, accounts: Accounts, users: Mapping[str, str]) -> list[Problem]:
    """Run last: it needs a complete placement. Each pair's quotas fit each member, and every
    pair a backup server backs up fits it."""
    index = {pair.name: i for i, pair in enumerate(estate.services.store_pairs)}
    pairs = pair_capacity(estate, accounts, users)
    headroom = "headroom (policies.capacity_headroom_percent)"
    problems = [
        Problem(
            f"services.store_pairs[{index[c.name]}]",
            f"quotas of its {c.users} users total {c.committed_bytes / 1e9:.1f} GB, more than the "
            f"{c.limit_bytes / 1e9:.1f} GB usable on each member after {c.headroom_percent}% {headroom}",
        )
        for c in pairs
        if not c.fits
    ]
    problems += [
        Problem(
            f"services.backup.hosts[{i}]",
            f"quotas of the {c.users} users of the pairs it backs up total {c.committed_bytes / 1e9:.1f} GB, more "
            f"than the {c.limit_bytes / 1e9:.1f} GB usable on {c.name!r} after {c.headroom_percent}% {headroom}",
        )
        for i, c in enumerate(backup_capacity(estate, pairs))
        if not c.fits
    ]
    return problems


def dns_forwarders(estate: Estate, addresses: Mapping[str, netaddr.IPAddress]) -> list[Problem]:
    """The DNS hosts forward outside names upstream: to an estate host, that is a loop (the
    estate's own DNS) or a host that runs no resolver."""
    owner = {address: name for name, address in addresses.items()}
    forwarders = estate.services.dns.forwarders
    problems = [
        Problem(
            f"services.dns.forwarders[{i}]",
            f"{address} is the address of estate host {owner[address]!r}: forwarders are resolvers outside the estate",
        )
        for i, address in enumerate(forwarders)
        if address in owner
    ]
    problems += [
        Problem(f"services.dns.forwarders[{i}]", f"{address} is a loopback address: the DNS host would ask itself")
        for i, address in enumerate(forwarders)
        if address.is_loopback()
    ]
    problems += [
        Problem(f"services.dns.forwarders[{forwarders.index(address)}]", f"{address} is listed twice")
        for address, count in Counter(forwarders).items()
        if count > 1
    ]
    return problems


def management_networks(estate: Estate, addresses: Mapping[str, netaddr.IPAddress]) -> list[Problem]:
    """Operators' networks hold operators' machines, never an estate host: every host's firewall
    admits SSH and administrative IMAP from them, so a webmail or list host inside one (the
    estate's most exposed machines) would reach every store's administration."""
    return [
        Problem(
            f"management_networks[{i}].subnet",
            f"{network.subnet} holds estate host {host!r} ({address}): a management network is where operators' "
            "machines are, outside the estate's hosts",
        )
        for i, network in enumerate(estate.management_networks)
        for host, address in sorted(addresses.items())
        if address in network.subnet
    ]
