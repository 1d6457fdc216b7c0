"""The TCP ports each host's services listen on, decided once.

The renderer hands them to the precheck (a port another program holds stops the deploy before
anything changes) and the invariants refuse a host whose services would want the same port.
The estate file sets the user-facing SMTP, IMAP and POP ports (``policies.ports``); the others
are the roles' own: the ones a role publishes for other roles or fixes in its templates, and
the protocols' standard ports. ``tests/test_listening.py`` holds these to the roles' files.
Pure functions of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from hermes.model import Estate
from hermes.topology import StoreRole, store_role

# The roles' own ports (the file each comes from, for the test that compares them).
LMTP = 2003  # the live store's lmtpd: cyrus_store_lmtp_port, roles/cyrus_store/vars/main/published.yml
SYNC = 2005  # sync_server on replicas and backups: cyrus_store_sync_port, roles/cyrus_store/defaults/main.yml
LISTS_LMTP = 8024  # Mailman's LMTP runner: mailman_lmtp_port, roles/mailman/vars/main/published.yml
LISTS_REST = 8001  # Mailman's REST API, loopback: _mailman_rest_port, roles/mailman/vars/main/role.yml
# The protocols' own ports.
DNS = 53
LDAPS = 636  # slapd listens on ldaps:/// (and ldapi://) only
HTTP, HTTPS = 80, 443


@dataclass(frozen=True, order=True)
class ServicePort:
    """One port a service of the host listens on: ``service`` is the estate's name for the
    service (a host role), ``listener`` what listens there (imaps, lmtp, ...)."""

    port: int
    service: str
    listener: str


def mailbox_ports(estate: Estate, *, imap_only: bool = False) -> dict[str, int]:
    """The estate's enabled IMAP and POP listeners (IMAP only: a receiver's), name -> port."""
    return {
        name: port.port
        for name, port in sorted(estate.policies.ports.mailbox_ports().items())
        if port.enabled and (name.startswith("imap") or not imap_only)
    }


def smtp_ports(estate: Estate) -> dict[str, int]:
    """The estate's enabled SMTP listeners (the hubs'), name -> port."""
    return {name: port.port for name, port in estate.policies.ports.smtp_ports().items() if port.enabled}


def store_ports(estate: Estate, role: StoreRole) -> tuple[str, dict[str, int]]:
    """The service a store host runs in ``role`` and its listeners. The live member serves its
    pair's users and takes LMTP; receivers serve IMAP to administrators only (no POP) and take
    replication."""
    if role is StoreRole.LIVE:
        return "store", {**mailbox_ports(estate), "lmtp": LMTP}
    return "backup" if role is StoreRole.BACKUP else "store", {**mailbox_ports(estate, imap_only=True), "sync": SYNC}


def service_ports(estate: Estate, host: str) -> list[ServicePort]:
    """Every port ``host``'s services listen on, sorted; a port twice when two listeners want it."""
    services = estate.services
    listeners: list[tuple[str, dict[str, int]]] = []
    if host in services.mx.hosts:
        listeners.append(("mx", smtp_ports(estate)))
    if (role := store_role(estate, host)) is not None:
        listeners.append(store_ports(estate, role))
    if host in services.proxy.hosts:
        listeners.append(("proxy", mailbox_ports(estate)))
    for service, fixed in (
        ("dns", {"dns": DNS}),
        ("directory", {"ldaps": LDAPS}),
        ("webmail", {"http": HTTP, "https": HTTPS}),
        ("lists", {"lmtp": LISTS_LMTP, "rest": LISTS_REST}),
    ):
        if host in getattr(services, service).hosts:
            listeners.append((service, fixed))
    return sorted(ServicePort(port, service, name) for service, ports in listeners for name, port in ports.items())
