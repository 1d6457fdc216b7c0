"""Holding a store pair (`hermesctl store hold/release`) on the hub's Exim and Dovecot.

A held pair's users' mail is accepted and kept on the hub's queue (never refused, never
bounced), their logins are refused with a temporary failure and their open sessions end;
the other pair's users notice nothing. Released, the queued mail is in the mailbox once and
the logins work. Users and pairs come from the rendered estate; the command is the real
`hermesctl`, reaching the containers with podman exec as `--lab` does.
"""

from __future__ import annotations

import imaplib
import json
import os
import poplib
import smtplib
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from accesslib import PROJECT, address, facts, host, imap_session, tls

HUB = "ac-hub"
VARS: dict[str, Any] = facts(HUB)
PASSWORDS: dict[str, str] = VARS["vault_hermes_user_passwords"]
PLACEMENT: dict[str, str] = VARS["hermes_placement"]
PAIRS: dict[str, Any] = VARS["hermes_store_pairs"]
DOMAIN: str = VARS["hermes_domains"]["mail"]
PORTS = {listener["name"]: listener["port"] for listener in VARS["hermes_proxy"]["listeners"]}
ESTATE = PROJECT / "molecule" / "access" / "estate" / "access.yml"
HERMESCTL = Path(os.environ.get("VIRTUAL_ENV", PROJECT / ".venv")) / "bin" / "hermesctl"

# alice is held (her pair), bob is not (the other pair).
HELD_USER, FREE_USER = "alice", "bob"
PAIR = PLACEMENT[HELD_USER]


def store(command: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(HERMESCTL), "store", command, PAIR, "--lab", "--json", "--estate", str(ESTATE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture
def held() -> Iterator[dict[str, Any]]:
    """The pair held; released afterwards whatever the test did."""
    try:
        yield store("hold")
    finally:
        with suppress(AssertionError):
            store("release")


def send(user: str) -> str:
    token = uuid.uuid4().hex
    message = EmailMessage()
    message["From"] = f"postmaster@{DOMAIN}"  # an address the hub can verify
    message["To"] = f"{user}@{DOMAIN}"
    message["Subject"] = token
    message.set_content("sent while a store pair was held\n")
    with smtplib.SMTP(address(HUB), 25, timeout=60) as smtp:
        refused = smtp.send_message(message)
    assert refused == {}
    return token


def copies(user: str, token: str, *, via: str = HUB) -> int:
    """How many messages with subject ``token`` the user's INBOX holds (through ``via``)."""
    port = PORTS["imaps"] if via == HUB else 993
    with imap_session(via, port, user, PASSWORDS[user]) as connection:
        connection.select("INBOX", readonly=True)
        status, data = connection.search(None, "SUBJECT", token)
        assert status == "OK"
        return len(data[0].split())


def eventually(predicate: Any, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def pop_login(user: str) -> bytes:
    client = poplib.POP3_SSL(address(HUB), PORTS["pop3s"], context=tls(), timeout=30)
    try:
        client.user(user)
        return client.pass_(PASSWORDS[user])
    finally:
        with suppress(OSError, poplib.error_proto):
            client.quit()


def test_a_held_pair_queues_its_mail_and_refuses_its_logins_until_released(held: dict[str, Any]) -> None:
    assert PLACEMENT[FREE_USER] != PAIR
    assert held["held"] is True
    assert {(h["host"], tuple(h["held"])) for h in held["hosts"]} == {(HUB, (PAIR,))}
    live = str(PAIRS[PAIR]["live"])

    # Logins: the held pair's user gets a temporary failure whatever the password; the other's works.
    for password in (PASSWORDS[HELD_USER], PASSWORDS[HELD_USER] + "x"):
        with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\]"):
            imap_session(HUB, PORTS["imaps"], HELD_USER, password)
    with imap_session(HUB, PORTS["imaps"], FREE_USER, PASSWORDS[FREE_USER]) as connection:
        assert connection.noop()[0] == "OK"
    with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
        pop_login(HELD_USER)
    assert pop_login(FREE_USER).startswith(b"+OK")

    # Mail: both accepted at once; the free user's delivered, the held user's kept queued.
    held_token, free_token = send(HELD_USER), send(FREE_USER)
    assert eventually(lambda: copies(FREE_USER, free_token) == 1)
    queue = host(HUB).check_output("exim4 -bp")
    assert f"{HELD_USER}@{DOMAIN}" in queue
    assert copies(HELD_USER, held_token, via=live) == 0  # straight on the store: not delivered
    log = host(HUB).check_output("grep -F %s /var/log/exim4/mainlog || true", f"{HELD_USER}@{DOMAIN}")
    assert "R=store_held defer" in log
    assert " ** " not in log  # never bounced

    released = store("release")
    [mx] = [h for h in released["hosts"] if h["service"] == "mx"]
    assert mx["held"] == [] and mx["queued_before"] >= 1 and mx["queued_after"] == 0
    assert copies(HELD_USER, held_token) == 1
    assert pop_login(HELD_USER).startswith(b"+OK")


def test_holding_ends_the_pairs_open_sessions_only() -> None:
    mine = imap_session(HUB, PORTS["imaps"], HELD_USER, PASSWORDS[HELD_USER])
    theirs = imap_session(HUB, PORTS["imaps"], FREE_USER, PASSWORDS[FREE_USER])
    try:
        store("hold")
        try:
            with pytest.raises((imaplib.IMAP4.abort, OSError)):
                for _ in range(10):
                    mine.noop()
                    time.sleep(0.2)
            assert theirs.noop()[0] == "OK"
        finally:
            store("release")
        with imap_session(HUB, PORTS["imaps"], HELD_USER, PASSWORDS[HELD_USER]) as again:
            assert again.noop()[0] == "OK"
    finally:
        for connection in (mine, theirs):
            with suppress(OSError):
                connection.shutdown()
