"""Role-shaped facts: what each role needs of the estate, decided here and nowhere else.

Each model below is one rendered variable (``hermes_cyrus``, ``hermes_mta``, ...) whose fields a
playbook maps one for one onto its role's variables. Every field names the estate field(s) it
comes from (``source``), so a value can be followed from the estate file to the template line
that uses it; ``docs/role-facts.md`` is generated from these models and the playbooks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import netaddr
from pydantic import BaseModel, ConfigDict, Field

from hermes.credentials import replication_user
from hermes.firewall import ANYWHERE, inbound
from hermes.listening import service_ports
from hermes.loader import LoadedEstate
from hermes.model import Estate
from hermes.model.domains import qualified
from hermes.render import dns
from hermes.topology import StoreRole, channels, pair_of, partitions, store_role, sync_sources

# What a message needs besides its attachments (headers, the text part): the margin the store
# also allows above the hubs' limit.
MESSAGE_OVERHEAD_BYTES = 65536
# glibc's resolver reads only the first three name servers of /etc/resolv.conf.
MAX_RESOLVERS = 3
# The fewest simultaneous sessions a store's client listener serves: Cyrus's usual maxchild,
# enough for a small pair and for the administrators of a backup server.
MIN_CLIENT_SESSIONS = 100


def fact(source: str, description: str) -> Any:
    """A field of a role fact, with the estate field(s) it is derived from."""
    return Field(description=description, json_schema_extra={"source": source})


class Facts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def rendered(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class HostEntry(Facts):
    address: str
    names: list[str]


class CommonFacts(Facts):
    """``hermes_common``, every host: the base system's view of the estate."""

    domain: str = fact("domains.hosts", "the hosts' DNS domain")
    hosts: list[HostEntry] = fact(
        "hosts[].name, .address (or allocated from .network), domains.hosts",
        "/etc/hosts entries for every host: address, FQDN, short name; sorted by name",
    )
    resolvers: list[str] = fact(
        "services.dns.hosts",
        "/etc/resolv.conf name servers: the DNS hosts' addresses, by host name, at most the first 3 (glibc's limit)",
    )
    search_domains: list[str] = fact("domains.hosts", "/etc/resolv.conf search list: the hosts' domain")


class PortOwner(Facts):
    port: int
    unit: str


class PrecheckFacts(Facts):
    """``hermes_precheck``, every host: what must hold on it before a deploy changes anything."""

    data_mount: str = fact(
        "hosts[].storage.mount", "where the host's RAID data volume must be mounted; empty for a host without one"
    )
    ports: list[PortOwner] = fact(
        "hosts[].roles, the services' hosts, policies.ports",
        "every TCP port the host's services will listen on (the estate's SMTP, IMAP and POP ports and the roles' "
        "own: LMTP, replication, LDAPS, DNS, HTTP(S), Mailman; hermes.listening), each with the systemd unit "
        "that may already hold it (from an earlier deploy); sorted by port",
    )
    management_networks: list[str] = fact(
        "management_networks[].subnet",
        "where operators deploy from: the host's firewall admits SSH from these only, so a deploy from elsewhere "
        "is stopped before it changes anything",
    )


class FirewallRule(Facts):
    port: int
    protocol: str
    service: str
    listener: str
    anywhere: bool
    ipv4: list[str]
    ipv6: list[str]


class FirewallFacts(Facts):
    """``hermes_firewall``, every host: who may connect to which of its ports (hermes.firewall);
    the host refuses everything else."""

    inbound: list[FirewallRule] = fact(
        "management_networks, hosts[].roles, the services' hosts, services.store_pairs, policies.ports",
        "each open port with what listens there and who may connect: anywhere (the hubs' SMTP, the proxies, "
        "webmail, DNS), or only the IPv4 and IPv6 sources listed (SSH and administrative IMAP from the management "
        "networks; LMTP from the hubs; replication from the pair's other member, or to a backup server from the "
        "members of the pairs it backs up; a store's IMAP and POP from the proxies; LDAPS from the estate's hosts); "
        "sorted by port",
    )


class SmtpListener(Facts):
    enabled: bool
    port: int
    tls: str
    auth: bool


class Blocklist(Facts):
    zone: str
    listed: list[str]


class MtaFacts(Facts):
    """``hermes_mta``, the mail hubs (group mx)."""

    mail_domain: str = fact("domains.mail", "the accounts' mail domain")
    managed_domains: dict[str, dict[str, list[str]]] = fact(
        "domains.managed[].name, .long_forms, .aliases",
        "managed domain, and each long form of one -> lower-cased local part -> targets",
    )
    routed_domains: dict[str, list[str]] = fact(
        "domains.routed[].name, .long_forms, .servers",
        "routed domain, and each long form of one -> its own mail servers, in the order to try them: its mail is "
        "relayed there, and a recipient is accepted only if the server takes it",
    )
    forwarding_domains: dict[str, dict[str, str]] = fact(
        "domains.forwarding[].name, .table",
        "forwarding domain -> local part -> its one target (a username of the mail domain or an address): the "
        "people's choices; a personal account not listed forwards to itself, any other local part has no address",
    )
    shared_accounts: list[str] = fact(
        "accounts (shared)", "accounts several people use, sorted: none has an address in a forwarding domain"
    )
    role_addresses: dict[str, list[str]] = fact(
        "domains.role_addresses", "postmaster, abuse, ... -> targets, answered in every domain (defaults filled in)"
    )
    lists_domain: str = fact("services.lists.domain", "Mailman's mail domain")
    lists_hosts: list[str] = fact(
        "services.lists.hosts",
        "addresses of the lists hosts: Mailman's LMTP, and relay without authenticating (Mailman sends through the hubs)",
    )
    lists: list[str] = fact("services.lists.lists[].name", "the lists: no other address of the lists' domain is accepted")
    store_pairs: dict[str, str] = fact("services.store_pairs[].live", "store pair -> address of its live member")
    store_members: list[str] = fact(
        "services.store_pairs[].master, .replica",
        "addresses of every pair member, live or spare: retried at every queue run, so a switchover changes no configuration",
    )
    relay_networks: list[str] = fact(
        "services.mx.relay_networks[].subnet", "client networks that may relay without authenticating"
    )
    never_relay_hosts: list[str] = fact(
        "networks[].gateway, services.mx.relay_networks[].subnet",
        "the routers inside the relay networks: traffic routed or translated in from outside may come from them",
    )
    message_size_limit_bytes: int = fact("policies.message_size_limit", "largest message accepted")
    ports: dict[str, SmtpListener] = fact("policies.ports.{smtp,smtps,submission}", "the SMTP listeners")
    dnsbls: list[Blocklist] = fact(
        "policies.spam.dnsbls[].zone, .listed",
        "DNS blocklists for outside clients, in the estate's order, each {zone, listed}: listed holds every answer "
        "that means listed, ranges expanded to single addresses, in numerical order; any other answer is ignored",
    )
    spam_tag_threshold: float = fact("policies.spam.spamassassin_threshold", "score at which mail is tagged")
    spam_reject_threshold: float | None = fact("policies.spam.reject_threshold", "score at which mail is refused")
    rate_limit: dict[str, Any] = fact(
        "policies.outgoing_rate_limit", "messages and recipients per period per authenticated sender"
    )
    recipients_per_message: int = fact("policies.recipients_per_message", "most recipients of one message")
    relay_host_rate_limit: dict[str, Any] = fact(
        "policies.relay_host_rate_limit", "messages per period per host of the relay networks"
    )
    failed_logins: dict[str, Any] = fact(
        "policies.failed_logins", "failed SMTP logins per period per host before its AUTH is refused"
    )
    connections_per_client: int = fact("policies.connections_per_client", "most simultaneous connections from one outside host")
    unlimited_clients: list[str] = fact(
        "services.webmail.hosts",
        "addresses of the hosts that send for many users (webmail), held only to the overall connection limit",
    )
    queue_interval: str = fact("policies.queue_interval", "how often deferred mail is retried")


class Antivirus(Facts):
    """``hermes_antivirus``, the mail hubs: where ClamAV's signatures come from. A real estate
    downloads them; the lab target (inventory/lab-target.yml) overrides this whole value."""

    freshclam: bool = fact("(deploy target)", "download signatures with freshclam")
    eicar_signature: bool = fact("(deploy target)", "install a local EICAR-only signature")


class SpamAssassinFacts(Facts):
    """``hermes_spamassassin``, the mail hubs: what SpamAssassin may ask over the Internet. A real
    estate's hubs use its network tests; the lab target (inventory/lab-target.yml), which has no
    Internet, overrides this whole value."""

    network_tests: bool = fact("(deploy target)", "query DNSBLs, URIBLs, Razor, Pyzor and DCC while scoring")


class SaslauthdFacts(Facts):
    """``hermes_saslauthd``, hubs and store pair members: the directory that checks passwords."""

    ldap_servers: list[str] = fact(
        "services.directory.hosts, domains.hosts", "LDAPS URIs of the directory hosts, in the order to try them"
    )
    user_dn: str = fact(
        "domains.mail", "a user's entry (saslauthd's %U is the username): saslauthd binds as it with the password"
    )


class DirectoryFacts(Facts):
    """``hermes_directory``, the directory hosts: the tree, its accounts, who is the provider."""

    suffix: str = fact("domains.mail", "the tree's base DN (dc= components of the mail domain)")
    organization: str = fact("name", "the base entry's o (the estate's name)")
    people: str = fact("domains.mail", "the DN under which each account has its entry")
    mail_domain: str = fact("domains.mail", "an entry's mail is <uid>@ this domain")
    accounts: list[str] = fact("accounts file", "every account: each has an entry; no other entry exists below people")
    provider: str = fact("services.directory.hosts[0], domains.hosts", "FQDN of the provider, where entries are written")
    replicas: list[str] = fact("services.directory.hosts[1:], domains.hosts", "FQDNs of the read-only replicas")


class Listener(Facts):
    name: str
    protocol: str
    port: int
    tls: str


class ReplicationChannel(Facts):
    name: str
    host: str


class CyrusFacts(Facts):
    """``hermes_cyrus``, store pair members and backup servers."""

    role: StoreRole = fact(
        "services.store_pairs[].live, services.backup.hosts", "live or spare (a pair member), or backup (a backup server)"
    )
    servername: str = fact("hosts[].name, domains.hosts", "the host's FQDN")
    data_mount: str = fact("hosts[].storage.mount", "mount point of the RAID data volume")
    partitions: dict[str, str] = fact(
        "services.store_pairs[].partitions (its pair's, and every pair backed up here)", "partition -> directory"
    )
    replication_channels: list[ReplicationChannel] = fact(
        "services.store_pairs[].live, .master, .replica, .backup",
        "the live member's channels: replica to its spare, backup to the backup server",
    )
    sync_clients: list[str] = fact(
        "services.store_pairs[].master, .replica, .live, .backup",
        "addresses that may replicate here: a spare's live peer, the live member of each pair backed up here",
    )
    lmtp_clients: list[str] = fact("services.mx.hosts", "addresses that may deliver by LMTP (the hubs)")
    replication_user: str = fact(
        "services.store_pairs[].name",
        "the pair's replication account, which its live member's sync_client authenticates as (hermes.credentials); "
        "empty on a backup server",
    )
    listeners: list[Listener] = fact("policies.ports.{imap,imaps,pop3,pop3s}", "the enabled IMAP and POP listeners")
    client_sessions: int = fact(
        "policies.sessions_per_account, placement",
        "simultaneous sessions each IMAP and POP listener serves (Cyrus maxchild): the pair's accounts times the "
        f"policy, rounded up, at least {MIN_CLIENT_SESSIONS}; the same on both members, so a switchover changes none; "
        f"{MIN_CLIENT_SESSIONS} on a backup server",
    )
    mailboxes: list[str] = fact("placement, accounts file", "the live member's users (their mailboxes); empty otherwise")
    quota_default_bytes: int = fact("policies.quota.default", "quota of a mailbox without an override")
    quota_overrides: dict[str, int] = fact("accounts file (quota column)", "this pair's users with their own quota")
    quota_warning_percent: int = fact("policies.quota.warning_percent", "usage at which users are warned")
    quota_warning_sender: str = fact("domains.mail", "From: of quota warnings (postmaster@ the mail domain)")
    message_size_limit_bytes: int = fact("policies.message_size_limit", "the hubs' message size limit")
    expunge_retention_days: int = fact("policies.delayed_expunge_days", "days expunged mail stays recoverable")
    delete_retention_days: int = fact("policies.delayed_delete_days", "days deleted folders stay recoverable")


class ProxyBackend(Facts):
    host: str
    address: str


class BackendPort(Facts):
    port: int
    tls: str


class ProxyFacts(Facts):
    """``hermes_proxy``, the IMAP/POP proxies: where each pair's users are sent, and how."""

    listeners: list[Listener] = fact("policies.ports.{imap,imaps,pop3,pop3s}", "the enabled client listeners")
    backends: dict[str, ProxyBackend] = fact(
        "services.store_pairs[].live, domains.hosts", "store pair -> its live member (FQDN for TLS, address to connect)"
    )
    backend_ports: dict[str, BackendPort] = fact(
        "policies.ports.{imap,imaps,pop3,pop3s}",
        "protocol -> the stores' port the proxy logs in on: the implicit-TLS one if enabled, else the STARTTLS one",
    )
    imap_only: list[str] = fact(
        "accounts (shared)",
        "shared accounts, sorted: their POP logins are refused (seed 001: IMAP suits shared accounts, POP does not; "
        "one person's POP client would take the mail off the server for everyone)",
    )


class Endpoint(Facts):
    host: str
    port: int
    tls: str


class WebmailFacts(Facts):
    """``hermes_webmail``, the webmail hosts (Roundcube): where it reads and sends mail as the
    user, and the size limits that let an attachment through every hop."""

    name: str = fact("domains.hosts", "the service name users browse to (webmail.<hosts domain>)")
    mail_domain: str = fact("domains.mail", "the domain of the users' addresses (their identities)")
    imap: Endpoint = fact(
        "services.proxy.hosts, policies.ports.{imaps,imap}, domains.hosts",
        "the proxies' round-robin name (imap.<hosts domain>) webmail logs in to as the user: implicit TLS if enabled, "
        "else STARTTLS",
    )
    smtp: Endpoint = fact(
        "services.mx.hosts, policies.ports.{submission,smtps}, domains.hosts",
        "the hubs' round-robin name (smtp.<hosts domain>) webmail submits to with the user's credentials: "
        "submission (STARTTLS) if enabled, else smtps",
    )
    attachment_size_limit_bytes: int = fact(
        "policies.message_size_limit",
        "the largest attachment (in total) whose message still fits the hubs' limit: base64 grows 57 bytes to 78, "
        f"and {MESSAGE_OVERHEAD_BYTES} bytes are left for headers and text",
    )


class MailingListFacts(Facts):
    name: str
    owners: list[str]
    members: list[str]


class ListsFacts(Facts):
    """``hermes_lists``, the lists hosts (Mailman 3): the lists' domain, every list with its
    rosters, and the hub Mailman sends through. Each lists host listens for LMTP on its own
    service address (hermes_address), where the hubs deliver."""

    domain: str = fact("services.lists.domain", "the lists' mail domain, Mailman's only domain")
    lists: list[MailingListFacts] = fact(
        "services.lists.lists[], domains.mail",
        "every list, by name, with its owners and members as full addresses (a username is <username>@ the "
        "accounts' domain): each deploy makes Mailman's rosters exactly these",
    )
    site_owner: str = fact("domains.mail", "Mailman's site owner, who hears of its problems: postmaster@ the accounts' domain")
    smtp_host: str = fact(
        "services.mx.hosts, domains.hosts",
        "the hubs' round-robin name (smtp.<hosts domain>) Mailman sends every message through; the hubs relay for "
        "the lists hosts",
    )
    smtp_port: int = fact("policies.ports.smtp", "the hubs' SMTP port (no AUTH: the lists hosts are relay hosts)")


class DnsSoa(Facts):
    primary: str
    hostmaster: str
    refresh: int
    retry: int
    expire: int
    negative_ttl: int


class MailExchanger(Facts):
    preference: int
    host: str


class DnsFacts(Facts):
    """``hermes_dns``, the DNS hosts (group dns): every zone they serve, complete but for the SOA
    serial, which the role bumps only when a zone's content changes. Names are FQDNs without the
    final dot; record values are zone-file text."""

    soa: DnsSoa = fact(
        "services.dns.hosts (the first, sorted), domains.mail",
        "SOA of every zone: primary name server, hostmaster mailbox (hostmaster@ the mail domain), timers",
    )
    name_servers: list[str] = fact("services.dns.hosts, domains.hosts", "the NS of every zone: the DNS hosts' FQDNs, sorted")
    default_ttl: int = fact("policies.dns_ttl", "TTL of the SOA, NS and MX records ($TTL of every zone)")
    mail_exchangers: list[MailExchanger] = fact(
        "services.mx.hosts", "the MX set of every mail domain, once: each hub's FQDN (an address record, never a CNAME)"
    )
    mail_domains: list[str] = fact(
        "domains.mail, domains.managed[].name, .long_forms, services.lists.domain",
        "the zones that carry the mail exchangers",
    )
    zones: dict[str, list[dict[str, Any]]] = fact(
        "hosts[], services.{mx,proxy,webmail,lists}.hosts, services.store_pairs[].live, placement.letters, policies.smtp_ttl",
        "zone -> records (name, type, ttl, value): hosts' A/AAAA, round-robin smtp/imap/pop/webmail (short TTL), "
        "mail[a-z] CNAME to the live member of the letter's pair, the lists' address, delegations of zones below",
    )
    recursion_clients: list[str] = fact(
        "hosts[].address (or allocated)", "who may recurse and read the cache: every estate host's address, sorted"
    )
    forwarders: list[str] = fact(
        "services.dns.forwarders", "upstream resolvers for outside names (forward only); empty: from the root"
    )
    dnssec_validation: bool = fact("services.dns.dnssec_validation", "validate outside answers' DNSSEC signatures")


# Rendered variable -> the model of its value, for the reference in docs/role-facts.md.
ROLE_FACTS: dict[str, type[Facts]] = {
    "hermes_common": CommonFacts,
    "hermes_firewall": FirewallFacts,
    "hermes_precheck": PrecheckFacts,
    "hermes_mta": MtaFacts,
    "hermes_antivirus": Antivirus,
    "hermes_spamassassin": SpamAssassinFacts,
    "hermes_saslauthd": SaslauthdFacts,
    "hermes_directory": DirectoryFacts,
    "hermes_proxy": ProxyFacts,
    "hermes_cyrus": CyrusFacts,
    "hermes_dns": DnsFacts,
    "hermes_lists": ListsFacts,
    "hermes_webmail": WebmailFacts,
}


def _fqdn(estate: Estate, host: str) -> str:
    return f"{host}.{estate.domains.hosts}"


def common_facts(loaded: LoadedEstate) -> CommonFacts:
    estate = loaded.estate
    return CommonFacts(
        domain=estate.domains.hosts,
        hosts=[
            HostEntry(address=str(loaded.addresses[h.name]), names=[_fqdn(estate, h.name), h.name])
            for h in sorted(estate.hosts, key=lambda h: h.name)
        ],
        resolvers=[str(loaded.addresses[h]) for h in sorted(estate.services.dns.hosts)][:MAX_RESOLVERS],
        search_domains=[estate.domains.hosts],
    )


def mta_facts(loaded: LoadedEstate) -> MtaFacts:
    estate = loaded.estate
    policies = estate.policies
    address = {name: str(a) for name, a in loaded.addresses.items()}
    relays = [relay.subnet for relay in estate.services.mx.relay_networks]
    return MtaFacts(
        mail_domain=estate.domains.mail,
        managed_domains={
            name: {local.lower(): list(targets) for local, targets in d.aliases.items()}
            for d in estate.domains.managed
            for name in d.names
        },
        routed_domains={name: list(d.servers) for d in estate.domains.routed for name in d.names},
        forwarding_domains={name: dict(sorted(table.items())) for name, table in sorted(loaded.forwards.items())},
        shared_accounts=sorted(loaded.shared_accounts),
        role_addresses=estate.domains.role_addresses.resolved(),
        lists_domain=estate.services.lists.domain,
        lists_hosts=[address[h] for h in sorted(estate.services.lists.hosts)],
        lists=sorted(m.name for m in estate.services.lists.lists),
        store_pairs={pair.name: address[pair.live] for pair in estate.services.store_pairs},
        store_members=sorted(
            {address[member] for pair in estate.services.store_pairs for member in pair.members}, key=netaddr.IPAddress
        ),
        relay_networks=[str(subnet) for subnet in relays],
        never_relay_hosts=sorted(
            {str(n.router) for n in estate.networks if any(n.router in subnet for subnet in relays)}, key=netaddr.IPAddress
        ),
        message_size_limit_bytes=int(policies.message_size_limit),
        ports={name: SmtpListener(**port.model_dump(mode="json")) for name, port in policies.ports.smtp_ports().items()},
        dnsbls=[Blocklist(zone=d.zone, listed=[str(a) for a in d.addresses()]) for d in policies.spam.dnsbls],
        spam_tag_threshold=policies.spam.spamassassin_threshold,
        spam_reject_threshold=policies.spam.reject_threshold,
        rate_limit=policies.outgoing_rate_limit.model_dump() | {"recipients": policies.outgoing_rate_limit.recipient_limit},
        recipients_per_message=policies.recipients_per_message,
        relay_host_rate_limit=policies.relay_host_rate_limit.model_dump(),
        failed_logins=policies.failed_logins.model_dump(),
        connections_per_client=policies.connections_per_client,
        unlimited_clients=sorted(address[host] for host in estate.services.webmail.hosts),
        queue_interval=policies.queue_interval,
    )


def directory_suffix(estate: Estate) -> str:
    return ",".join(f"dc={label}" for label in estate.domains.mail.split("."))


def saslauthd_facts(loaded: LoadedEstate) -> SaslauthdFacts:
    """Hubs and pair members alike ask the directory; none holds a password itself."""
    estate = loaded.estate
    return SaslauthdFacts(
        ldap_servers=[f"ldaps://{_fqdn(estate, host)}/" for host in estate.services.directory.hosts],
        user_dn=f"uid=%U,ou=people,{directory_suffix(estate)}",
    )


def directory_facts(loaded: LoadedEstate) -> DirectoryFacts:
    estate = loaded.estate
    directory = estate.services.directory
    suffix = directory_suffix(estate)
    return DirectoryFacts(
        suffix=suffix,
        organization=estate.name,
        people=f"ou=people,{suffix}",
        mail_domain=estate.domains.mail,
        accounts=sorted(loaded.accounts),
        provider=_fqdn(estate, directory.provider),
        replicas=[_fqdn(estate, host) for host in directory.replicas],
    )


def _listeners(estate: Estate) -> list[Listener]:
    """The enabled IMAP and POP listeners, the same on the stores and on the proxies."""
    return [
        Listener(name=name, protocol=name[:4], port=port.port, tls=str(port.tls))
        for name, port in sorted(estate.policies.ports.mailbox_ports().items())
        if port.enabled
    ]


# The unit that listens on each service's ports once its role has run.
_UNITS = {
    "mx": "exim4.service",
    "store": "cyrus-imapd.service",
    "backup": "cyrus-imapd.service",
    "proxy": "dovecot.service",
    "dns": "named.service",
    "directory": "slapd.service",
    "webmail": "nginx.service",
    "lists": "mailman3.service",
}


def precheck_facts(estate: Estate, host: str) -> PrecheckFacts:
    """The precheck role's view of ``host``: its data volume and the ports its services need."""
    owners = {(port.port, _UNITS[port.service]) for port in service_ports(estate, host)}
    storage = estate.host(host).storage
    return PrecheckFacts(
        data_mount=storage.mount if storage is not None else "",
        ports=[PortOwner(port=port, unit=unit) for port, unit in sorted(owners)],
        management_networks=[str(network.subnet) for network in estate.management_networks],
    )


def firewall_facts(loaded: LoadedEstate, host: str) -> FirewallFacts:
    return FirewallFacts(
        inbound=[
            FirewallRule(
                port=opening.port,
                protocol=opening.protocol,
                service=opening.service,
                listener=opening.listener,
                anywhere=opening.sources == ANYWHERE,
                ipv4=opening.by_version(4),
                ipv6=opening.by_version(6),
            )
            for opening in inbound(loaded, host)
        ]
    )


def proxy_facts(loaded: LoadedEstate) -> ProxyFacts:
    estate = loaded.estate
    ports = estate.policies.ports
    backend_ports = {}
    for protocol, plain, implicit in (("imap", ports.imap, ports.imaps), ("pop3", ports.pop3, ports.pop3s)):
        # Both are TLS; implicit TLS is preferred: no STARTTLS exchange before the login, and the
        # client's address (IMAP ID) travels inside TLS.
        chosen = implicit if implicit.enabled else plain
        backend_ports[protocol] = BackendPort(port=chosen.port, tls=str(chosen.tls))
    return ProxyFacts(
        listeners=_listeners(estate),
        backends={
            pair.name: ProxyBackend(host=_fqdn(estate, pair.live), address=str(loaded.addresses[pair.live]))
            for pair in estate.services.store_pairs
        },
        backend_ports=backend_ports,
        imap_only=sorted(loaded.shared_accounts),
    )


def webmail_facts(loaded: LoadedEstate) -> WebmailFacts:
    """Webmail reads and sends through the round-robin imap and smtp names, which the estate's
    DNS serves to its hosts: a proxy or hub that is down is skipped for the next address."""
    estate = loaded.estate
    zone = estate.domains.hosts
    ports = estate.policies.ports
    imap = ports.imaps if ports.imaps.enabled else ports.imap
    smtp = ports.submission if ports.submission.enabled else ports.smtps
    limit = int(estate.policies.message_size_limit)
    return WebmailFacts(
        name=f"{dns.WEBMAIL}.{zone}",
        mail_domain=estate.domains.mail,
        imap=Endpoint(host=f"{dns.IMAP}.{zone}", port=imap.port, tls=str(imap.tls)),
        smtp=Endpoint(host=f"{dns.SMTP}.{zone}", port=smtp.port, tls=str(smtp.tls)),
        attachment_size_limit_bytes=max(0, limit - MESSAGE_OVERHEAD_BYTES) * 57 // 78,
    )


def lists_facts(loaded: LoadedEstate) -> ListsFacts:
    """Mailman sends through the hubs' round-robin name, as webmail does: a hub that is down is
    skipped for the next address, and Mailman retries when none answers (docs/lists.md)."""
    estate = loaded.estate
    lists = estate.services.lists
    mail = estate.domains.mail
    return ListsFacts(
        domain=lists.domain,
        lists=[
            MailingListFacts(
                name=m.name,
                owners=[qualified(t, mail) for t in m.owners],
                members=[qualified(t, mail) for t in m.members],
            )
            for m in sorted(lists.lists, key=lambda m: m.name)
        ],
        site_owner=f"postmaster@{mail}",
        smtp_host=f"{dns.SMTP}.{estate.domains.hosts}",
        smtp_port=estate.policies.ports.smtp.port,
    )


def cyrus_facts(
    loaded: LoadedEstate, host: str, users: Mapping[str, tuple[str, ...]], address: Mapping[str, str]
) -> CyrusFacts | None:
    """The cyrus_store role's view of ``host``, or None when it runs no Cyrus. ``users``: each
    pair's users (topology.users_by_pair); ``address``: each host's address as text."""
    estate = loaded.estate
    role = store_role(estate, host)
    if role is None:
        return None
    policies = estate.policies
    pair = pair_of(estate, host)
    pair_users = users.get(pair.name, ()) if pair is not None else ()
    storage = estate.host(host).storage
    assert storage is not None  # invariants: store and backup hosts describe their storage
    return CyrusFacts(
        role=role,
        servername=_fqdn(estate, host),
        data_mount=storage.mount,
        partitions=partitions(estate, host),
        replication_channels=[ReplicationChannel(name=c.name, host=address[c.target]) for c in channels(pair) if c.source == host]
        if pair is not None
        else [],
        sync_clients=[address[h] for h in sync_sources(estate, host)],
        lmtp_clients=sorted(address[h] for h in estate.services.mx.hosts),
        replication_user=replication_user(pair.name) if pair is not None else "",
        listeners=_listeners(estate),
        client_sessions=max(MIN_CLIENT_SESSIONS, math.ceil(len(pair_users) * policies.sessions_per_account)),
        mailboxes=list(pair_users) if role is StoreRole.LIVE else [],
        quota_default_bytes=int(policies.quota.default),
        quota_overrides={u: q for u in pair_users if (q := loaded.accounts.get(u)) is not None},
        quota_warning_percent=policies.quota.warning_percent,
        quota_warning_sender=f"postmaster@{estate.domains.mail}",
        message_size_limit_bytes=int(policies.message_size_limit),
        expunge_retention_days=policies.delayed_expunge_days,
        delete_retention_days=policies.delayed_delete_days,
    )


def dns_facts(loaded: LoadedEstate) -> DnsFacts:
    estate = loaded.estate
    servers = dns.name_servers(estate)
    return DnsFacts(
        soa=DnsSoa(
            primary=servers[0],
            hostmaster=dns.hostmaster(estate),
            refresh=dns.SOA_REFRESH,
            retry=dns.SOA_RETRY,
            expire=dns.SOA_EXPIRE,
            negative_ttl=dns.SOA_NEGATIVE_TTL,
        ),
        name_servers=servers,
        default_ttl=estate.policies.dns_ttl,
        mail_exchangers=[MailExchanger(**mx) for mx in dns.mail_exchangers(estate)],
        mail_domains=dns.mail_domains(estate),
        zones=dns.zone_records(estate, loaded.addresses),
        recursion_clients=[str(a) for a in sorted(set(loaded.addresses.values()))],
        forwarders=[str(a) for a in estate.services.dns.forwarders],
        dnssec_validation=estate.services.dns.dnssec_validation,
    )
