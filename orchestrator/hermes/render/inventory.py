"""The Ansible inventory of an estate, as the roles consume it and auditors read it.

Layout (all paths relative to the rendered directory, e.g. inventory/rendered/<estate>/):
  hosts.yml                     groups by service, and one group per store pair
  group_vars/all/estate.yml     estate-wide facts for people: domains, hosts, networks, pairs
  group_vars/all/common.yml     hermes_common: the base every host gets
  group_vars/all/placement.yml  the user -> store pair map used by the MTA and the proxy
  group_vars/all/secrets.yml    names of the vault variables that hold secrets
  group_vars/all/directory.yml  hermes_saslauthd: how hubs and stores ask the directory
  group_vars/directory.yml      hermes_directory: the directory's tree and accounts
  group_vars/mx.yml             the hubs' role facts: hermes_mta, hermes_antivirus, hermes_spamassassin
  group_vars/proxy.yml          hermes_proxy: each pair's live member, the listeners
  group_vars/dns.yml            hermes_dns: every zone the DNS hosts serve
  group_vars/lists.yml          hermes_lists: Mailman's domain, the lists and their rosters
  group_vars/webmail.yml        hermes_webmail: the proxy and hub webmail uses, size limits
  host_vars/<host>.yml          one host's address, place, hardware, and its role facts
                                (hermes_cyrus on a store or backup server)

The hermes_<role> variables are role-shaped (hermes.render.roles): playbooks map their fields
one for one onto role variables, so every rule about the estate is decided here.
"""

from __future__ import annotations

from typing import Any

from hermes.credentials import ADMIN_PASSWORDS, REPLICATION_PASSWORDS, admin_scope, replication_senders, replication_user
from hermes.loader import LoadedEstate
from hermes.model import Estate, Role, StorePair
from hermes.render.roles import (
    Antivirus,
    SpamAssassinFacts,
    common_facts,
    cyrus_facts,
    directory_facts,
    dns_facts,
    firewall_facts,
    lists_facts,
    mta_facts,
    precheck_facts,
    proxy_facts,
    saslauthd_facts,
    webmail_facts,
)
from hermes.render.yamlfile import dump, header
from hermes.topology import pair_of, users_by_pair

# Where each user's mail is, as deployed: hermes.relocations reads it back.
PLACEMENT_FILE = "group_vars/all/placement.yml"

# Service role -> inventory group. Store pairs also get a group each (pair_<name>).
GROUPS = {
    Role.MX: "mx",
    Role.STORE: "stores",
    Role.BACKUP: "backup",
    Role.PROXY: "proxy",
    Role.WEBMAIL: "webmail",
    Role.LISTS: "lists",
    Role.DNS: "dns",
    Role.DIRECTORY: "directory",
}

# Secrets the roles will need; only the vault variables' names are rendered.
SECRETS = (
    ADMIN_PASSWORDS,  # pair or backup server -> its Cyrus administrator's password (hermes.credentials)
    REPLICATION_PASSWORDS,  # pair -> its replication account's password
    "directory_replication_password",  # the replicas read the provider's tree with it
    "mailman_admin_password",
    "webmail_des_key",
    "srs_secret",  # the hubs' key of the SRS return paths of mail they redirect out (roles/mta)
    "user_passwords",  # username -> initial password; the directory keeps only a salted hash
)


FENCED_GROUP = "fenced"


def pair_group(pair: StorePair) -> str:
    return "pair_" + pair.name.replace("-", "_")


def _hosts_file(estate: Estate) -> dict[str, Any]:
    children: dict[str, Any] = {}
    for role, group in GROUPS.items():
        members = sorted(h.name for h in estate.hosts if role in h.roles)
        if members:
            children[group] = {"hosts": dict.fromkeys(members, None)}
    for pair in estate.services.store_pairs:
        children[pair_group(pair)] = {"hosts": dict.fromkeys(sorted(pair.members), None)}
    # Members a failover fenced: every playbook leaves them out (``:!fenced``) until
    # ``hermesctl store reattach``. Always present, so the pattern always names a group.
    fenced = sorted(pair.fenced for pair in estate.services.store_pairs if pair.fenced is not None)
    children[FENCED_GROUP] = {"hosts": dict.fromkeys(fenced, None)}
    return {"all": {"children": children}}


def _pair_vars(pair: StorePair) -> dict[str, Any]:
    return {
        "master": pair.master,
        "replica": pair.replica,
        "live": pair.live,
        "spare": pair.spare,
        "backup": pair.backup,
        "fenced": pair.fenced,
        "group": pair_group(pair),
        "partitions": {p.name: p.path for p in pair.partitions},
    }


def _estate_vars(loaded: LoadedEstate, estate_file: str) -> dict[str, Any]:
    estate = loaded.estate
    domains = estate.domains
    return {
        # The header of every file the roles template onto hosts.
        "ansible_managed": f"Managed by hermes (Ansible) from {estate_file}; local edits will be overwritten",
        "hermes_estate": estate.name,
        "hermes_domains": {"hosts": domains.hosts, "mail": domains.mail, "lists": estate.services.lists.domain},
        "hermes_networks": {
            n.name: {"subnet": str(n.subnet), "gateway": str(n.router), "prefix": n.subnet.prefixlen} for n in estate.networks
        },
        "hermes_hosts": {
            h.name: {
                "address": str(loaded.addresses[h.name]),
                "fqdn": f"{h.name}.{domains.hosts}",
                "roles": [str(r) for r in h.roles],
            }
            for h in estate.hosts
        },
        "hermes_store_pairs": {pair.name: _pair_vars(pair) for pair in estate.services.store_pairs},
    }


def _secret(name: str, key: str) -> str:
    """A reference to one entry of a keyed vault secret (never its value)."""
    return f"{{{{ hermes_{name}[{key!r}] }}}}"


def _cyrus_credentials(estate: Estate, host: str) -> dict[str, Any]:
    """Which of the vault's Cyrus passwords ``host`` uses (hermes.credentials): its administrator's,
    its sync_client's (a pair member's; none on a backup server) and the replication accounts its
    sync_server accepts."""
    pair = pair_of(estate, host)
    return {
        "hermes_cyrus_admin_password": _secret(ADMIN_PASSWORDS, admin_scope(estate, host)),
        "hermes_cyrus_replication_password": _secret(REPLICATION_PASSWORDS, pair.name) if pair is not None else "",
        "hermes_cyrus_replication_senders": [
            {"user": replication_user(sender), "password": _secret(REPLICATION_PASSWORDS, sender)}
            for sender in replication_senders(estate, host)
        ],
    }


def _host_vars(loaded: LoadedEstate) -> dict[str, dict[str, Any]]:
    estate = loaded.estate
    feeds = {(s.name, r.name): r.power_feed for s in estate.sites for r in s.racks}
    users = users_by_pair(loaded.placement)
    address = {name: str(a) for name, a in loaded.addresses.items()}
    result = {}
    for host in estate.hosts:
        data: dict[str, Any] = {
            "ansible_host": address[host.name],
            "hermes_address": address[host.name],
            "hermes_fqdn": f"{host.name}.{estate.domains.hosts}",
            "hermes_network": host.network,
            "hermes_location": {"site": host.site, "rack": host.rack, "power_feed": feeds[(host.site, host.rack)]},
            "hermes_roles": [str(r) for r in host.roles],
            "hermes_precheck": precheck_facts(estate, host.name).rendered(),
            "hermes_firewall": firewall_facts(loaded, host.name).rendered(),
        }
        if host.storage is not None:
            data["hermes_storage"] = {
                "mount": host.storage.mount,
                "raid": str(host.storage.raid),
                "disks": host.storage.disks,
                "hot_spares": host.storage.hot_spares,
                "raw_bytes": host.storage.raw_bytes,
                "usable_bytes": host.storage.usable_bytes,
            }
        if (cyrus := cyrus_facts(loaded, host.name, users, address)) is not None:
            data["hermes_cyrus"] = cyrus.rendered()
            data.update(_cyrus_credentials(estate, host.name))
        if (pair := pair_of(estate, host.name)) is not None:
            data["hermes_store_pair"] = pair.name
        result[host.name] = data
    return result


def render_inventory(loaded: LoadedEstate, estate_file: str) -> dict[str, str]:
    """Every file of the rendered inventory: relative path -> text."""
    estate = loaded.estate

    def yaml_file(purpose: str, data: Any) -> str:
        return header(estate_file, purpose) + "---\n" + dump(data)

    files = {
        "hosts.yml": yaml_file(
            f"Inventory of estate {estate.name}: hosts grouped by service and by store pair.", _hosts_file(estate)
        ),
        "group_vars/all/estate.yml": yaml_file(
            "Estate-wide facts for people (roles take theirs from hermes_<role>).", _estate_vars(loaded, estate_file)
        ),
        "group_vars/all/common.yml": yaml_file(
            "The base every host gets (roles/common), as playbooks/common.yml maps it.",
            {"hermes_common": common_facts(loaded).rendered()},
        ),
        PLACEMENT_FILE: yaml_file(
            "Where each user's mail lives: user -> store pair.", {"hermes_placement": dict(loaded.placement)}
        ),
        "group_vars/all/secrets.yml": yaml_file(
            "Secrets are never rendered: each variable names its value in the ansible-vault file.",
            {f"hermes_{name}": f"{{{{ vault_hermes_{name} }}}}" for name in SECRETS},
        ),
        "group_vars/mx.yml": yaml_file(
            "The mail hubs' role facts: Exim (hermes_mta), ClamAV's signatures, SpamAssassin's network tests.",
            {
                "hermes_mta": mta_facts(loaded).rendered(),
                "hermes_antivirus": Antivirus(freshclam=True, eicar_signature=False).rendered(),
                "hermes_spamassassin": SpamAssassinFacts(network_tests=True).rendered(),
            },
        ),
        "group_vars/all/directory.yml": yaml_file(
            "How hosts check passwords against the directory (saslauthd on the hubs and stores).",
            {"hermes_saslauthd": saslauthd_facts(loaded).rendered()},
        ),
        "group_vars/proxy.yml": yaml_file(
            "The IMAP/POP proxies' role facts (hermes_proxy); they route by hermes_placement.",
            {"hermes_proxy": proxy_facts(loaded).rendered()},
        ),
        "group_vars/directory.yml": yaml_file(
            "The directory hosts' role facts (hermes_directory): the tree and every account.",
            {"hermes_directory": directory_facts(loaded).rendered()},
        ),
        "group_vars/dns.yml": yaml_file(
            "The DNS hosts' role facts (hermes_dns): every zone, complete but for the serial (the role's).",
            {"hermes_dns": dns_facts(loaded).rendered()},
        ),
        "group_vars/lists.yml": yaml_file(
            "The lists hosts' role facts (hermes_lists): Mailman's domain, the lists and their rosters.",
            {"hermes_lists": lists_facts(loaded).rendered()},
        ),
        "group_vars/webmail.yml": yaml_file(
            "The webmail hosts' role facts (hermes_webmail): where Roundcube reads and sends, size limits.",
            {"hermes_webmail": webmail_facts(loaded).rendered()},
        ),
    }
    for name, data in _host_vars(loaded).items():
        files[f"host_vars/{name}.yml"] = yaml_file(f"Host {name}.", data)
    return dict(sorted(files.items()))
