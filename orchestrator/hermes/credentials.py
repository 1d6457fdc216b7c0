"""Which Cyrus credentials each store host holds, decided once.

Each store pair has its own administrator and its own replication account, and so does each
backup server its administrator: a password learnt from one pair opens no other. A pair's
replication account authenticates its live member's sync_client to the pair's other member and
to its backup server, which holds the accounts of every pair it backs up. The replication
accounts are administrators of the receivers' sync_server only (Cyrus's service-specific
``syncserver_admins``), never of their IMAP.

The vault keeps the passwords in two mappings, ``vault_hermes_cyrus_admin_passwords`` (pair or
backup server -> password) and ``vault_hermes_cyrus_replication_passwords`` (pair -> password);
the rendered inventory names only which entry each host uses. Pure functions of the model.
"""

from __future__ import annotations

from hermes.model import Estate
from hermes.topology import backed_up_pairs, pair_of

ADMIN_PASSWORDS = "cyrus_admin_passwords"
REPLICATION_PASSWORDS = "cyrus_replication_passwords"


def admin_scope(estate: Estate, host: str) -> str:
    """Whose administrator ``host`` has: its pair's, or a backup server's own."""
    pair = pair_of(estate, host)
    return pair.name if pair is not None else host


def admin_scopes(estate: Estate) -> list[str]:
    """Every administrator the vault must hold a password for: one per pair and per backup server."""
    return sorted({pair.name for pair in estate.services.store_pairs} | set(estate.services.backup.hosts))


def replication_scopes(estate: Estate) -> list[str]:
    """Every replication account the vault must hold a password for: one per pair."""
    return sorted(pair.name for pair in estate.services.store_pairs)


def replication_user(pair: str) -> str:
    """The Cyrus user a pair's sync_client authenticates as."""
    return f"sync-{pair}"


def replication_senders(estate: Estate, host: str) -> list[str]:
    """The pairs whose replication account ``host``'s sync_server accepts: a member's own pair
    (whichever member is live: a switchover changes no account), a backup server's every pair."""
    pair = pair_of(estate, host)
    if pair is not None:
        return [pair.name]
    return sorted(p.name for p in backed_up_pairs(estate, host))


def vault_keys(estate: Estate) -> dict[str, list[str]]:
    """The keyed Cyrus secrets of the vault (without their ``vault_hermes_`` prefix), each with
    the keys it must hold."""
    return {ADMIN_PASSWORDS: admin_scopes(estate), REPLICATION_PASSWORDS: replication_scopes(estate)}
