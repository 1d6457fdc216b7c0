"""Helpers of the store scenario's tests: the scenario's facts, IMAP/POP over TLS from the
controller, LMTP from inside a container, and the consistency check of hermes.store.

Expected values come from the rendered estate (estate/store.yml, what a deploy is given) and
the scenario's inventory (molecule.yml, the vault's throwaway values), read through Ansible,
so the tests and the scenario cannot drift apart.
"""

from __future__ import annotations

import imaplib
import json
import os
import re
import shlex
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import testinfra
import testinfra.utils.ansible_runner
import yaml

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
if str(PROJECT / "orchestrator") not in sys.path:
    sys.path.insert(0, str(PROJECT / "orchestrator"))

from hermes.store import PairSpec, PairStatus, PodmanRunner, check_pairs, snapshot  # noqa: E402
from hermes.store.examine import HostSnapshot  # noqa: E402

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
# The lab CA, which `hermesctl lab up` made and signed every host's certificate with.
CA = PROJECT / ".lab" / "pki" / "ca.crt"
ESTATE = Path(__file__).resolve().parent.parent / "estate" / "store.yml"

MOLECULE = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
RENDERED = testinfra.utils.ansible_runner.AnsibleRunner(str(EPHEMERAL / "rendered"))
MASTER, REPLICA, BACKUP, MX = "store-master", "store-replica", "store-backup", "store-mx"


def facts(name: str) -> dict[str, Any]:
    """A host's variables: the scenario's, then the rendered estate's (as Ansible ranks them)."""
    return {**MOLECULE.get_variables(name), **RENDERED.get_variables(name)}


VARS: dict[str, Any] = facts(MASTER)
CYRUS: dict[str, Any] = VARS["hermes_cyrus"]
MANAGED = str(VARS["ansible_managed"])
PAIR = VARS["hermes_store_pairs"]["s1"]
USERS = sorted(u for u, p in VARS["hermes_placement"].items() if p == "s1")
PASSWORDS: dict[str, str] = VARS["vault_hermes_user_passwords"]
# The Cyrus administrator; its password is its pair's, or the backup server's own (the vault
# keys them so: hermes.credentials).
ADMIN = "cyrus"
ADMIN_PASSWORDS: dict[str, str] = VARS["vault_hermes_cyrus_admin_passwords"]
REPLICATION_PASSWORDS: dict[str, str] = VARS["vault_hermes_cyrus_replication_passwords"]
SPEC = PairSpec("s1", live=PAIR["live"], spare=PAIR["spare"], backup=PAIR["backup"], owners=frozenset(USERS))
CYRUS_BIN = "/usr/lib/cyrus/bin"
# What the scenario leaves at the role's defaults (ports, the size margin), and the LMTP port
# the role publishes for the hubs.
DEFAULTS: dict[str, Any] = yaml.safe_load((PROJECT / "roles" / "cyrus_store" / "defaults" / "main.yml").read_text())
LMTP_PORT = int(
    yaml.safe_load((PROJECT / "roles" / "cyrus_store" / "vars" / "main" / "published.yml").read_text())["cyrus_store_lmtp_port"]
)


def address(name: str) -> str:
    return str(VARS["hermes_hosts"][name]["address"])


def host(name: str) -> Any:
    return testinfra.get_host(f"podman://{name}")


def journal(name: str, since: str = "-10min") -> str:
    """The host's recent journal (``since``: anything journalctl takes, e.g. @<epoch>)."""
    # No --lines: after the common role moves the journal to disk, the last N lines it picks
    # need not be the newest.
    return str(host(name).run(f"journalctl --no-pager --since={shlex.quote(since)}").stdout)


def tls_context() -> ssl.SSLContext:
    """Verifies the hosts' certificates against the scenario's CA (and the address as name)."""
    return ssl.create_default_context(cafile=str(CA))


@contextmanager
def imap(name: str, user: str, password: str) -> Iterator[imaplib.IMAP4_SSL]:
    connection = imaplib.IMAP4_SSL(address(name), 993, ssl_context=tls_context(), timeout=30)
    try:
        connection.login(user, password)
        yield connection
    finally:
        with suppress(OSError, imaplib.IMAP4.error):
            connection.logout()


def admin_password(name: str) -> str:
    """The administrator's password on ``name``: its pair's, or a backup server's own."""
    return ADMIN_PASSWORDS[facts(name).get("hermes_store_pair", name)]


def admin(name: str) -> Any:
    return imap(name, ADMIN, admin_password(name))


def user(name: str, login: str) -> Any:
    return imap(name, login, PASSWORDS[login])


def ok(result: tuple[str, list[Any]]) -> list[Any]:
    status, data = result
    assert status == "OK", (status, data)
    return data


def lmtp_send(sender: str, rcpt: str, *, count: int = 1, size: int = 0, subject: str = "test", tag: str = "m") -> dict[str, Any]:
    """Run the scenario's LMTP client inside ``sender`` against the master's lmtpd."""
    command = shlex.join(
        [
            "lmtp-send",
            address(MASTER),
            str(LMTP_PORT),
            rcpt,
            "--count",
            str(count),
            "--size",
            str(size),
            "--subject",
            subject,
            "--tag",
            tag,
        ]
    )
    return dict(json.loads(host(sender).check_output(command)))


def deliver(rcpt: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Deliver from the MX; every message must be accepted."""
    outcome = lmtp_send(MX, rcpt, **kwargs)
    assert outcome["error"] is None, outcome
    assert [r["code"] for r in outcome["results"]] == [250] * len(outcome["results"]), outcome
    return list(outcome["results"])


def mailboxes_of(login: str, name: str) -> list[str]:
    """Every mailbox of a user on a host (as the admin sees them), including deleted ones."""
    return sorted(m for m, state in snapshot(PodmanRunner(), name).mailboxes.items() if state.owner == login)


def snapshots() -> dict[str, HostSnapshot]:
    runner = PodmanRunner()
    return {name: snapshot(runner, name) for name in (MASTER, REPLICA, BACKUP)}


def wait_in_sync(timeout: float = 60.0) -> PairStatus:
    """Until the master holds no pending sync log and every mailbox agrees on both channels."""
    deadline = time.monotonic() + timeout
    while True:
        [status] = check_pairs([SPEC], PodmanRunner())
        if status.in_sync:
            return status
        if time.monotonic() > deadline:
            details = [
                (c.channel, [f.name for f in c.pending_logs], [(m.mailbox, m.differences) for m in c.mailboxes if m.differences])
                for c in status.channels
            ]
            raise AssertionError(f"pair s1 not in sync after {timeout:.0f} s: {details}")
        time.sleep(0.5)


def grant_admin_read(login: str) -> None:
    """Let the admin read a user's mailboxes (ACL set on the master, replicated): the tests
    read UIDs and flags on the receivers, where no user can log in."""
    with admin(MASTER) as connection:
        listed = ok(connection.list('""', f"user.{login}*"))
        for line in listed:
            mailbox = line.decode().rsplit(" ", 1)[-1].strip('"')
            ok(connection.setacl(mailbox, ADMIN, "lr"))


def messages(name: str, mailbox: str) -> dict[str, Any]:
    """UIDVALIDITY and uid -> (flags without \\Seen/\\Recent, Message-ID) of a mailbox, as the admin sees it."""
    with admin(name) as connection:
        status = ok(connection.status(mailbox, "(UIDVALIDITY)"))[0].decode()
        uidvalidity = int(re.search(r"UIDVALIDITY (\d+)", status).group(1))  # type: ignore[union-attr]
        ok(connection.select(mailbox, readonly=True))
        found: dict[int, tuple[frozenset[str], str]] = {}
        data = ok(connection.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"))
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta = item[0].decode()
            uid = int(re.search(r"UID (\d+)", meta).group(1))  # type: ignore[union-attr]
            flags = re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split()  # type: ignore[union-attr]
            message_id = item[1].decode().partition(":")[2].strip()
            found[uid] = (frozenset(f for f in flags if f not in ("\\Seen", "\\Recent")), message_id)
    return {"uidvalidity": uidvalidity, "messages": found}


def search_message_id(connection: imaplib.IMAP4, message_id: str) -> list[int]:
    data = ok(connection.uid("SEARCH", "HEADER", "Message-ID", message_id))
    return [int(uid) for uid in (data[0] or b"").split()]
