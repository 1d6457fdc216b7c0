"""A planned switchover of a store pair under load, and back, on the deployed lab estate.

While mail flows through both MX hosts to a user on each pair and an IMAP client logs in
through a proxy again and again, `hermesctl store switchover` makes the pair's spare live.
Afterwards every accepted message is in its mailbox exactly once, the mailbox kept its
UIDVALIDITY, every message its UID and POP unique id (a POP client downloads nothing again)
and a flag set before, a deploy of the same hosts changes nothing, and the other pair never
noticed. The switchover records the new live member in the lab's estate file and
renders it, as it does for any estate; switching back leaves both as they were.
The figures (how long logins were refused, how much mail was queued) are printed for
docs/store.md.
"""

from __future__ import annotations

import imaplib
import json
import os
import poplib
import smtplib
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dns.resolver
import pytest

from hermes.check import probe_users
from hermes.lab.vault import read_lab_vault
from hermes.loader import load_estate
from hermes.paths import LAB_STATE, PROJECT_ROOT
from hermes.store.check import check_pairs, pair_specs
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


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    vault = read_lab_vault(LAB_STATE / "lab" / "vault.yml", LAB_STATE / "lab" / "vault-password")
    return dict(vault["vault_hermes_user_passwords"])


@pytest.fixture(scope="module")
def users(passwords: dict[str, str]) -> dict[str, str]:
    return dict(probe_users(LOADED, passwords).by_pair)


@pytest.fixture(scope="module")
def estate_file() -> Iterator[Path]:
    """The lab's estate file, which the switchover rewrites with its committed render; both are
    put back byte for byte afterwards if the test left them otherwise."""
    rendered = PROJECT_ROOT / "inventory" / "rendered" / ESTATE.name
    saved = {path: path.read_bytes() for path in [ESTATE_FILE, *rendered.rglob("*")] if path.is_file()}
    yield ESTATE_FILE
    for path, content in saved.items():
        if path.read_bytes() != content:
            path.write_bytes(content)


def hermesctl(*args: str) -> str:
    result = subprocess.run([str(HERMESCTL), *args], capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, (
        f"hermesctl {' '.join(args)}: {result.returncode}\n{result.stderr[-3000:]}\n{result.stdout[-2000:]}"
    )
    return result.stdout


def switchover(estate: Path, pair: str) -> dict[str, Any]:
    output = hermesctl("store", "switchover", pair, "--lab", "--json", "--estate", str(estate))
    document: dict[str, Any] = json.loads(output)
    return document


@dataclass
class Load:
    """Mail to each user through each MX in turn, and logins through a proxy, until stopped."""

    users: dict[str, str]  # pair -> user
    passwords: dict[str, str]
    accepted: dict[str, list[str]] = field(default_factory=dict)  # user -> tokens accepted
    refused: list[str] = field(default_factory=list)
    login_failures: list[float] = field(default_factory=list)
    logins: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def send(self) -> None:
        mx = sorted(ESTATE.services.mx.hosts)
        turn = 0
        while not self.stop.is_set():
            for user in self.users.values():
                token = uuid.uuid4().hex
                message = EmailMessage()
                message["From"] = f"postmaster@{ESTATE.domains.mail}"
                message["To"] = f"{user}@{ESTATE.domains.mail}"
                message["Subject"] = f"load {token}"
                message.set_content("switchover load\n")
                try:
                    with smtplib.SMTP(address(mx[turn % len(mx)]), 25, timeout=30) as smtp:
                        smtp.send_message(message)
                    self.accepted.setdefault(user, []).append(token)
                except (smtplib.SMTPException, OSError) as error:  # refused, or no MX listening
                    self.refused.append(f"{user}: {error!r}")
                turn += 1
            time.sleep(0.2)

    def log_in(self) -> None:
        user = self.users[PAIR.name]
        proxy = sorted(ESTATE.services.proxy.hosts)[0]
        while not self.stop.is_set():
            self.logins += 1
            try:
                with imaplib.IMAP4_SSL(address(proxy), IMAPS, ssl_context=tls(), timeout=30) as imap:
                    imap.login(user, self.passwords[user])
                    imap.select("INBOX", readonly=True)
            except (imaplib.IMAP4.error, OSError):
                self.login_failures.append(time.monotonic())
            time.sleep(0.3)

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self.send), threading.Thread(target=self.log_in)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


@dataclass(frozen=True)
class Mailbox:
    """A user's INBOX as their clients see it through a proxy."""

    uidvalidity: int
    uids: dict[str, int]  # subject -> UID
    copies: dict[str, int]  # load token -> how many messages carry it
    flagged: set[str]  # subjects
    uidls: set[str]  # POP's unique ids


def mailbox(user: str, password: str) -> Mailbox:
    proxy = address(sorted(ESTATE.services.proxy.hosts)[0])
    with imaplib.IMAP4_SSL(proxy, IMAPS, ssl_context=tls(), timeout=30) as imap:
        imap.login(user, password)
        _, data = imap.status("INBOX", "(UIDVALIDITY)")
        uidvalidity = int(data[0].split(b"UIDVALIDITY ")[1].rstrip(b")"))
        _, exists = imap.select("INBOX", readonly=True)
        query = "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
        fetched = imap.fetch("1:*", query)[1] if int(exists[0] or 0) else []
    uids: dict[str, int] = {}
    copies: dict[str, int] = {}
    flagged: set[str] = set()
    for item in fetched:
        if not isinstance(item, tuple):
            continue
        subject = item[1].decode().strip().removeprefix("Subject: ")
        uids[subject] = int(item[0].split(b"UID ")[1].split()[0].rstrip(b")"))
        if subject.startswith("load "):
            copies[subject[5:]] = copies.get(subject[5:], 0) + 1
        if b"\\Flagged" in item[0]:
            flagged.add(subject)
    pop = poplib.POP3_SSL(proxy, ESTATE.policies.ports.pop3s.port, context=tls(), timeout=30)
    try:
        pop.user(user)
        pop.pass_(password)
        uidls = {line.split()[1].decode() for line in pop.uidl()[1]}
    finally:
        pop.quit()
    return Mailbox(uidvalidity, uids, copies, flagged, uidls)


def flag_one(user: str, password: str) -> str:
    """Append a message through the proxy and flag it; its subject."""
    subject = f"flagged {uuid.uuid4().hex}"
    with imaplib.IMAP4_SSL(address(sorted(ESTATE.services.proxy.hosts)[0]), IMAPS, ssl_context=tls(), timeout=30) as imap:
        imap.login(user, password)
        message = f"Subject: {subject}\r\nFrom: {user}@{ESTATE.domains.mail}\r\n\r\nkeep my flag\r\n".encode()
        assert imap.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(time.time()), message)[0] == "OK"
    return subject


def mail_name_target(user: str) -> str:
    """Where the estate's DNS sends the user's mail[a-z] name (its CNAME's target)."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [address(ESTATE.services.dns.hosts[0])]
    [answer] = resolver.resolve(f"mail{user[0]}.{ESTATE.domains.hosts}", "CNAME")
    return str(answer.target)


def wait_in_sync(estate: Path) -> None:
    specs = pair_specs(load_estate(estate))
    deadline = time.monotonic() + 90
    while not all(s.in_sync for s in check_pairs(specs, PodmanRunner())):
        assert time.monotonic() < deadline, "the pairs did not come into sync"
        time.sleep(1)


@pytest.fixture(scope="module")
def switched(estate_file: Path, users: dict[str, str], passwords: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The first pair switched over under load, then back; what was seen on the way."""
    wait_in_sync(estate_file)
    before = {pair: mailbox(user, passwords[user]) for pair, user in users.items()}
    flagged = flag_one(users[PAIR.name], passwords[users[PAIR.name]])
    wait_in_sync(estate_file)
    with Load(users, passwords) as load:
        time.sleep(3)
        there = switchover(estate_file, PAIR.name)
        time.sleep(3)
    seen: dict[str, Any] = {"load": load, "there": there, "before": before, "flagged": flagged}
    seen["live"] = load_estate(estate_file).estate.services.store_pairs[0].live
    seen["name_there"] = mail_name_target(users[PAIR.name])
    seen["after"] = {pair: mailbox(user, passwords[user]) for pair, user in users.items()}
    # The flip deployed only what a live member changes; a whole deploy of the same hosts
    # finds nothing left to do.
    seen["redeploy"] = json.loads(hermesctl("deploy", "--lab", "--json", "--limit", ",".join(there["deployed_to"])))
    wait_in_sync(estate_file)
    seen["back"] = switchover(estate_file, PAIR.name)
    seen["name_back"] = mail_name_target(users[PAIR.name])
    yield seen


def test_the_spare_is_live_and_every_accepted_message_is_there_once(switched: dict[str, Any], users: dict[str, str]) -> None:
    load: Load = switched["load"]
    there = switched["there"]
    assert switched["live"] == PAIR.spare == there["live"]
    assert [s["step"] for s in there["steps"]] == ["gate", "hold", "drain", "stop", "flip", "verify", "release", "confirm"]
    # The flip, the tasks tagged store_live, did all a live member changes: the confirming
    # deploy (every task of the roles that could) changed nothing on its hosts, and moved the
    # user's mail[a-z] name (the zones are its part) to the new live member, and back.
    assert there["confirm_changed"] == 0 == switched["back"]["confirm_changed"]
    assert switched["name_there"] == f"{PAIR.spare}.{ESTATE.domains.hosts}."
    assert switched["name_back"] == f"{PAIR.live}.{ESTATE.domains.hosts}."
    # Nothing refused, 4xx or 5xx, and no MX restarted (a switchover changes no Exim
    # configuration): the hold queues.
    assert load.refused == []
    for pair, user in users.items():
        copies = switched["after"][pair].copies
        accepted = load.accepted[user]
        assert len(accepted) > 10, f"too little load for {user}"
        assert {t: copies.get(t, 0) for t in accepted} == dict.fromkeys(accepted, 1), f"{pair}: lost or duplicated mail"
    print(
        f"\nswitchover of {PAIR.name} under load: held {there['held_seconds']:.1f} s, "
        f"{there['queued_messages']} message(s) queued, {len(load.login_failures)} of {load.logins} logins refused; "
        f"steps {[(s['step'], round(s['seconds'], 1)) for s in there['steps']]}; "
        f"back: held {switched['back']['held_seconds']:.1f} s"
    )


def test_uids_pop_ids_and_flags_survive_and_the_other_pair_is_untouched(switched: dict[str, Any], users: dict[str, str]) -> None:
    for pair in users:
        before: Mailbox = switched["before"][pair]
        after: Mailbox = switched["after"][pair]
        assert after.uidvalidity == before.uidvalidity, pair
        # Every message there before keeps its UID, and POP clients see no message as new.
        assert {s: after.uids.get(s) for s in before.uids} == before.uids, pair
        assert before.uidls <= after.uidls, pair
        assert len(after.uids) > len(before.uids), pair  # the load's mail is there too
    assert switched["flagged"] in switched["after"][PAIR.name].flagged
    load: Load = switched["load"]
    # Logins were refused only while the pair was held, never for longer.
    if load.login_failures:
        assert load.login_failures[-1] - load.login_failures[0] <= switched["there"]["held_seconds"] + 5


def test_the_flip_left_nothing_for_a_deploy_to_do(switched: dict[str, Any]) -> None:
    redeploy = switched["redeploy"]
    assert redeploy["status"] == "successful" and redeploy["changed"] == 0, redeploy["hosts"]
    assert set(redeploy["hosts"]) == set(switched["there"]["deployed_to"])


def test_switched_back_the_estate_is_as_deployed(switched: dict[str, Any], estate_file: Path) -> None:
    assert switched["back"]["live"] == PAIR.live
    assert load_estate(estate_file).estate.services.store_pairs[0].live == PAIR.live
    assert estate_file.read_bytes() == ORIGINAL
    hermesctl("render", "--check", "--estate", str(estate_file))  # the committed render too
    wait_in_sync(estate_file)
    assert OTHER.live == load_estate(estate_file).estate.services.store_pairs[1].live
