"""`hermesctl mailbox merge` on the live member, as TRIUMF needed it in 2010 (seed 002).

A user ends up with three copies of an inbox: the live one, an older backup restored into a
folder, and a suspect copy with a few extra messages; folders below them, with spaces and
non-ASCII characters in their names. The user's own IMAP login sets them up and reads the
outcome; the command runs as an operator runs it, against the scenario's estate file with a
vault and certificate directory of a real estate.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from imapclient import IMAPClient
from storelib import ADMIN_PASSWORDS, CA, ESTATE, MASTER, PASSWORDS, PROJECT, address

USER = "erin"  # an account no other test of the scenario uses
LIVE = "INBOX"
BACKUP_COPY = "INBOX.Sunstore 19 May"  # the older backup, restored into a folder
SUSPECT = "INBOX.Sunstore été"  # the copy with a few extra messages
SENT, PLANS = "Sent Items", "Projets à faire"
HERMESCTL = Path(shutil.which("hermesctl") or PROJECT / ".venv" / "bin" / "hermesctl")
DAY0 = datetime(2010, 5, 1, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Mail:
    key: str  # what the test calls it; its Subject
    day: int  # its internal date: DAY0 + day
    message_id: bool = True
    extra: str = ""  # a header line only this copy has (same message, other bytes)

    def raw(self) -> bytes:
        mid = f"Message-ID: <{self.key}@triumf.test>\r\n" if self.message_id else ""
        return (
            f"From: someone@triumf.test\r\nTo: {USER}@example.test\r\nSubject: {self.key}\r\n{mid}{self.extra}"
            f"Date: {(DAY0 + timedelta(days=self.day)).strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n\r\n{self.key}\r\n"
        ).encode()

    @property
    def date(self) -> datetime:
        return DAY0 + timedelta(days=self.day)


# The live inbox lost m4 and m5 in the incident and got m7 since; the backup has the older
# state; the suspect copy has m2 with a header more (another GUID, the same Message-ID), the
# extra m5 and m6, m8 which its owner had deleted there, and m9 (no Message-ID) as the backup.
M = {k: Mail(k, day) for day, k in enumerate(["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"], start=1)}
M9 = Mail("m9", 9, message_id=False)
COPIES: dict[str, list[tuple[Mail, tuple[bytes, ...]]]] = {
    LIVE: [(M["m1"], (b"\\Seen",)), (M["m2"], (b"\\Seen",)), (M["m3"], ()), (M["m7"], ())],
    BACKUP_COPY: [(M["m1"], ()), (M["m2"], ()), (M["m3"], ()), (M["m4"], (b"\\Seen",)), (M9, ())],
    SUSPECT: [
        (Mail("m2", 2, extra="X-Restored: sunstore\r\n"), ()),
        (M["m5"], ()),
        (M["m6"], (b"\\Flagged",)),
        (M["m8"], (b"\\Deleted",)),
        (M9, ()),
    ],
    f"{LIVE}.{SENT}": [(Mail("s1", 1), (b"\\Seen",))],
    f"{BACKUP_COPY}.{SENT}": [(Mail("s1", 1), (b"\\Seen",)), (Mail("s2", 3), (b"\\Seen",))],
    f"{SUSPECT}.{PLANS}": [(Mail("p1", 4), (b"\\Answered",))],
}
# What each live folder must hold afterwards: every distinct message once, none deleted.
EXPECTED = {
    LIVE: {"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m9"},
    f"{LIVE}.{SENT}": {"s1", "s2"},
    f"{LIVE}.{PLANS}": {"p1"},
}
FLAGS = {k: set(flags) for folder, mails in COPIES.items() for mail, flags in mails for k in [mail.key] if flags}


@contextmanager
def session() -> Iterator[IMAPClient]:
    """The user's own IMAP session on the live member."""
    client = IMAPClient(address(MASTER), 993, ssl_context=ssl.create_default_context(cafile=str(CA)), timeout=30)
    client.normalise_times = False
    client.login(USER, PASSWORDS[USER])
    try:
        yield client
    finally:
        client.logout()


def contents(client: IMAPClient) -> dict[str, list[dict[str, Any]]]:
    """Every selectable folder: its messages' subject, GUID, internal date and flags."""
    found = {}
    for flags, _, name in client.list_folders():
        if b"\\Noselect" in flags:
            continue
        client.select_folder(name, readonly=True)
        fetched = client.fetch(
            client.search("ALL"), ["DIGEST.SHA1", "INTERNALDATE", "FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]
        )
        found[name] = [
            {
                "key": d[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip(),
                "guid": d[b"DIGEST.SHA1"],
                "date": d[b"INTERNALDATE"],
                "flags": set(d[b"FLAGS"]) - {b"\\Recent"},
            }
            for _, d in sorted(fetched.items())
        ]
    return found


def empty_account() -> None:
    """The user's account with an empty INBOX and no other folder (the test can run again)."""
    with session() as client:
        for _, _, name in sorted(client.list_folders(), reverse=True):
            if name != LIVE:
                client.delete_folder(name)
        client.select_folder(LIVE)
        if messages := client.search("ALL"):
            client.delete_messages(messages)
            client.expunge()


def merge(tmp: Path, *args: str, expect: int) -> subprocess.CompletedProcess[str]:
    """hermesctl mailbox merge for USER, as for a real estate: its vault (the pair's admin
    password, encrypted) and its certificate directory."""
    site = tmp / "site"
    if not site.exists():
        (site / "certs" / "hosts").mkdir(parents=True)
        shutil.copy(CA, site / "certs" / "ca.crt")
        (site / "vault-password").write_text("merge-test-vault\n")
        vault = site / "vault.yml"
        vault.write_text(yaml.safe_dump({"vault_hermes_cyrus_admin_passwords": ADMIN_PASSWORDS}))
        subprocess.run(
            ["ansible-vault", "encrypt", "--vault-password-file", str(site / "vault-password"), str(vault)],
            check=True,
            capture_output=True,
        )
    command = [str(HERMESCTL), "mailbox", "merge", USER, *args, "--estate", str(ESTATE)]
    command += ["--vault", str(site / "vault.yml"), "--vault-password-file", str(site / "vault-password")]
    command += ["--certificates", str(site / "certs")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    return result


def test_three_copies_of_an_inbox_merge_into_one_with_every_message_once(tmp_path: Path) -> None:
    empty_account()
    with session() as client:
        for folder, mails in COPIES.items():
            if folder != LIVE:
                client.create_folder(folder)
            for mail, flags in mails:
                client.append(folder, mail.raw(), flags=flags, msg_time=mail.date)
        before = contents(client)

    # A copy that is not there is refused, naming it, and nothing changes; the dry run
    # reports the plan and changes nothing either.
    refused = merge(tmp_path, "--copy", BACKUP_COPY, "--copy", "INBOX.Coraid", expect=2)
    assert "INBOX.Coraid" in refused.stderr and "no such folder" in refused.stderr
    dry = json.loads(merge(tmp_path, "--copy", BACKUP_COPY, "--copy", SUSPECT, "--dry-run", "--json", expect=0).stdout)
    planned = {f["target"]: sum(f["copied"].values()) for f in dry["folders"]}
    live_keys = {folder: {m.key for m, _ in COPIES.get(folder, [])} for folder in EXPECTED}
    assert planned == {folder: len(EXPECTED[folder] - live_keys[folder]) for folder in EXPECTED}
    assert not dry["applied"]
    with session() as client:
        assert contents(client) == before

    done = json.loads(merge(tmp_path, "--copy", BACKUP_COPY, "--copy", SUSPECT, "--json", expect=0).stdout)
    assert done["applied"] and not done["missing"]
    with session() as client:
        after = contents(client)
    for folder, keys in EXPECTED.items():
        counted = Counter(m["key"] for m in after[folder])
        assert counted == Counter(keys), (folder, counted)
        for message in after[folder]:
            assert message["date"] == next(m.date for f in COPIES.values() for m, _ in f if m.key == message["key"])
            assert message["flags"] == FLAGS.get(message["key"], set()), message
    # Each live folder that received messages was first kept whole, as it was; a new one was not.
    root = done["backup_root"]
    assert after[root] == before[LIVE]
    assert after[f"{root}.{SENT}"] == before[f"{LIVE}.{SENT}"]
    assert not any(name.startswith(f"{root}.{PLANS}") for name in after)
    # The copies are left as they were: the owner deletes them once satisfied.
    for folder in (BACKUP_COPY, SUSPECT):
        assert after[folder] == before[folder]

    # Merged again, nothing is left to copy and nothing is touched.
    again = json.loads(merge(tmp_path, "--copy", BACKUP_COPY, "--copy", SUSPECT, "--json", expect=0).stdout)
    assert again["copied"] == 0 and again["backup_root"] is None
    with session() as client:
        assert contents(client) == after
