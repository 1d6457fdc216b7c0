"""The ports hermes.listening says the roles listen on are the ones the roles' files set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hermes import listening
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from hermes.render.roles import precheck_facts
from hermes.topology import StoreRole, store_role

ROLES = PROJECT_ROOT / "roles"


def _variables(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_the_roles_own_ports_are_the_roles_files() -> None:
    published = _variables(ROLES / "cyrus_store" / "vars" / "main" / "published.yml")
    assert published["cyrus_store_lmtp_port"] == listening.LMTP
    assert _variables(ROLES / "cyrus_store" / "defaults" / "main.yml")["cyrus_store_sync_port"] == listening.SYNC
    assert _variables(ROLES / "mailman" / "vars" / "main" / "published.yml")["mailman_lmtp_port"] == listening.LISTS_LMTP
    assert _variables(ROLES / "mailman" / "vars" / "main" / "role.yml")["_mailman_rest_port"] == listening.LISTS_REST
    # slapd listens on ldaps (636) and the local socket only, never on plain ldap (389).
    assert _variables(ROLES / "directory" / "vars" / "main" / "role.yml")["_directory_listeners"].split() == [
        "ldaps:///",
        "ldapi:///",
    ]
    nginx = (ROLES / "webmail" / "templates" / "etc" / "nginx" / "sites-available" / "roundcube.conf.j2").read_text()
    listens = {line.split()[1] for line in nginx.splitlines() if line.strip().startswith("listen ")}
    assert listens == {str(listening.HTTP), str(listening.HTTPS), f"[::]:{listening.HTTP}", f"[::]:{listening.HTTPS}"}


def test_each_host_is_prechecked_for_its_own_services_ports() -> None:
    loaded = load_estate(PROJECT_ROOT / "inventory" / "estates" / "lab.yml")
    estate = loaded.estate
    ports = estate.policies.ports
    mailbox = {p.port for p in ports.mailbox_ports().values() if p.enabled}
    imap = {p.port for name, p in ports.mailbox_ports().items() if p.enabled and name.startswith("imap")}
    smtp = {p.port for p in ports.smtp_ports().values() if p.enabled}
    live = next(h.name for h in estate.hosts if store_role(estate, h.name) is StoreRole.LIVE)
    spare = next(h.name for h in estate.hosts if store_role(estate, h.name) is StoreRole.SPARE)
    hub = estate.services.mx.hosts[0]

    def prechecked(host: str) -> dict[int, str]:
        return {owner.port: owner.unit for owner in precheck_facts(estate, host).ports}

    assert prechecked(live) == dict.fromkeys(mailbox | {listening.LMTP}, "cyrus-imapd.service")
    # A spare serves no POP and takes replication instead of LMTP.
    assert prechecked(spare) == dict.fromkeys(imap | {listening.SYNC}, "cyrus-imapd.service")
    # The lab's hubs are its proxies too: Exim's ports and Dovecot's, side by side.
    assert hub in estate.services.proxy.hosts
    assert prechecked(hub) == dict.fromkeys(smtp, "exim4.service") | dict.fromkeys(mailbox, "dovecot.service")
    dns = estate.services.dns.hosts[0]
    assert dns in estate.services.directory.hosts
    assert prechecked(dns) == {listening.DNS: "named.service", listening.LDAPS: "slapd.service"}
