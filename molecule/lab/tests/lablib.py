"""What the lab scenario's store-operation tests share: the lab estate and its files, the
users and passwords, hermesctl, and reading a mailbox as its clients do.

The operations rewrite the lab's estate file and its committed render; the ``estate_file``
fixture (conftest.py) puts both back byte for byte afterwards if a test left them otherwise.
"""

from __future__ import annotations

import imaplib
import json
import os
import ssl
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hermes.lab.traffic import Load, Mailbox
from hermes.lab.traffic import mailbox as read_mailbox
from hermes.loader import load_estate
from hermes.paths import LAB_STATE, PROJECT_ROOT
from hermes.store import check as store_check
from hermes.store.check import pair_specs
from hermes.store.runner import PodmanRunner

ESTATE_FILE = PROJECT_ROOT / "inventory" / "estates" / "lab.yml"
LOADED = load_estate(ESTATE_FILE)
ESTATE = LOADED.estate
ORIGINAL = ESTATE_FILE.read_bytes()
CA = LAB_STATE / "pki" / "ca.crt"
HERMESCTL = Path(os.environ.get("VIRTUAL_ENV", PROJECT_ROOT / ".venv")) / "bin" / "hermesctl"
PAIR = ESTATE.services.store_pairs[0]
OTHER = ESTATE.services.store_pairs[1]
IMAPS = ESTATE.policies.ports.imaps.port


def tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CA))


def address(host: str) -> str:
    return str(LOADED.addresses[host])


def hermesctl(*args: str, expect: int = 0) -> str:
    """hermesctl's standard output; it must exit ``expect``."""
    result = subprocess.run([str(HERMESCTL), *args], capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == expect, (
        f"hermesctl {' '.join(args)}: {result.returncode}\n{result.stderr[-3000:]}\n{result.stdout[-2000:]}"
    )
    return result.stdout


def switchover(estate: Path, pair: str) -> dict[str, Any]:
    output = hermesctl("store", "switchover", pair, "--lab", "--json", "--estate", str(estate))
    document: dict[str, Any] = json.loads(output)
    return document


def mailbox(user: str, password: str) -> Mailbox:
    return read_mailbox(LOADED, CA, user, password)


def flag_one(user: str, password: str) -> str:
    """Append a message through the proxy and flag it; its subject."""
    subject = f"flagged {uuid.uuid4().hex}"
    with imaplib.IMAP4_SSL(address(sorted(ESTATE.services.proxy.hosts)[0]), IMAPS, ssl_context=tls(), timeout=30) as imap:
        imap.login(user, password)
        message = f"Subject: {subject}\r\nFrom: {user}@{ESTATE.domains.mail}\r\n\r\nkeep my flag\r\n".encode()
        assert imap.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(time.time()), message)[0] == "OK"
    return subject


def wait_in_sync(estate: Path) -> None:
    specs = pair_specs(load_estate(estate))
    assert store_check.wait_in_sync(specs, PodmanRunner(), timeout=90), "the pairs did not come into sync"


def assert_each_accepted_once(load: Load, after: Mapping[str, Mailbox], users: Mapping[str, str]) -> None:
    """Every message the load had accepted for each pair's user is in that mailbox exactly once."""
    for pair, user in users.items():
        copies = after[pair].copies
        accepted = load.accepted[user]
        assert len(accepted) > 10, f"too little load for {user}"
        assert {t: copies.get(t, 0) for t in accepted} == dict.fromkeys(accepted, 1), f"{pair}: lost or duplicated mail"


def assert_uids_kept(before: Mapping[str, Mailbox], after: Mapping[str, Mailbox]) -> None:
    """Each pair's mailbox kept its UIDVALIDITY, and every message there before its UID."""
    for pair, was in before.items():
        now = after[pair]
        assert now.uidvalidity == was.uidvalidity, pair
        assert {s: now.uids.get(s) for s in was.uids} == was.uids, pair
