"""The message store seen from outside: is each pair's replication caught up, and do the
live member and its receivers (spare, backup) agree, mailbox by mailbox?

``examine`` parses what the hosts report (pure), ``check`` compares it (pure) and gathers
it through a ``runner`` (podman exec in the lab, ssh in production); ``hold`` holds a pair's
mail and logins at the MX hosts and proxies; ``cli`` is the ``hermesctl store`` sub-app.
Core modules never import the CLI.
"""

from hermes.errors import StoreError
from hermes.store.check import (
    Agreement,
    ChannelStatus,
    MailboxComparison,
    PairSpec,
    PairStatus,
    channel_status,
    check_pairs,
    compare_mailboxes,
    pair_specs,
    snapshot,
)
from hermes.store.examine import HostSnapshot, MailboxState, SyncLogFile, parse_mbexamine, parse_snapshot, parse_sync_logs
from hermes.store.runner import CommandRunner, PodmanRunner, SshRunner

__all__ = [
    "Agreement",
    "ChannelStatus",
    "CommandRunner",
    "HostSnapshot",
    "MailboxComparison",
    "MailboxState",
    "PairSpec",
    "PairStatus",
    "PodmanRunner",
    "SshRunner",
    "StoreError",
    "SyncLogFile",
    "channel_status",
    "check_pairs",
    "compare_mailboxes",
    "pair_specs",
    "parse_mbexamine",
    "parse_snapshot",
    "parse_sync_logs",
    "snapshot",
]
