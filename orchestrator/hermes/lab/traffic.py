"""Users' traffic on a deployed lab estate while a store operation runs: the proof of the
switchover (molecule/lab/tests/test_switchover.py) and its benchmark
(scripts/benchmark-store-operations.py) share it.

:class:`Load`, until stopped:

* mail to one user of each pair, through each MX in turn, from the Internet side (the
  ``internet-client`` container, as a stranger), each message tagged with a token;
* an IMAP client logging in through a proxy, again and again, as one user;
* a POP client downloading that user's new messages through a proxy, by unique id, and
  keeping them, as a POP client left to "leave mail on server" does.

Every attempt is kept with its time, so the time a user could not log in (the RTO seen from
a client) is measured, not inferred. :func:`mailbox` reads a mailbox as its clients see it.
"""

from __future__ import annotations

import imaplib
import json
import poplib
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hermes.lab import internet
from hermes.lab.image import podman_env
from hermes.loader import LoadedEstate

# Runs on the Internet side's client: sends until its standard input closes, and prints one
# JSON line per message. Python's standard library only (the client has nothing else).
_SENDER = """
import json, select, smtplib, sys, time, uuid
from email.message import EmailMessage
hubs, domain, users, pause = json.loads(sys.argv[1])
turn = 0
while not select.select([sys.stdin], [], [], 0)[0]:
    for user in users:
        token = uuid.uuid4().hex
        message = EmailMessage()
        message["From"], message["To"] = "stranger@internet.test", f"{user}@{domain}"
        message["Subject"] = f"load {token}"
        message.set_content("load\\n")
        try:
            with smtplib.SMTP(hubs[turn % len(hubs)], 25, local_hostname="client.internet.test", timeout=30) as smtp:
                smtp.send_message(message)
            print(json.dumps({"user": user, "token": token}), flush=True)
        except (smtplib.SMTPException, OSError) as error:
            print(json.dumps({"user": user, "refused": repr(error)}), flush=True)
        turn += 1
    time.sleep(pause)
"""


@dataclass(frozen=True)
class Attempt:
    """One login (and what followed it) by a client: when it started and ended, and whether it worked."""

    started: float
    ended: float
    ok: bool


def outage(attempts: Sequence[Attempt]) -> float:
    """Seconds from the start of the first failed attempt to the start of the first good one
    after the last failure: how long the user could not log in (0 if never)."""
    failed = [i for i, a in enumerate(attempts) if not a.ok]
    if not failed:
        return 0.0
    after = next((a.started for a in attempts[failed[-1] + 1 :] if a.ok), attempts[failed[-1]].ended)
    return after - attempts[failed[0]].started


@dataclass
class Load:
    """Mail to ``users`` (pair -> user) from the Internet side, and IMAP and POP clients of
    ``client`` through the first proxy, from entering the ``with`` block to leaving it."""

    loaded: LoadedEstate
    ca: Path
    users: Mapping[str, str]
    passwords: Mapping[str, str]
    client: str
    pause: float = 0.3
    accepted: dict[str, list[str]] = field(default_factory=dict)  # user -> tokens accepted
    refused: list[str] = field(default_factory=list)
    imap: list[Attempt] = field(default_factory=list)
    pop: list[Attempt] = field(default_factory=list)
    # What the POP client downloaded: subject -> how many times (more than once: it saw the
    # message under a new unique id, and a real client would have shown it twice).
    downloaded: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def _address(self, host: str) -> str:
        return str(self.loaded.addresses[host])

    def _proxy(self) -> str:
        return self._address(sorted(self.loaded.estate.services.proxy.hosts)[0])

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def _send(self) -> None:
        estate = self.loaded.estate
        hubs = [self._address(h) for h in sorted(estate.services.mx.hosts)]
        config = json.dumps([hubs, estate.domains.mail, sorted(self.users.values()), self.pause])
        command = ["podman", "exec", "--interactive", internet.CLIENT[0], "python3", "-c", _SENDER, config]
        with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=podman_env()) as sender:
            assert sender.stdin is not None and sender.stdout is not None
            threading.Thread(target=self._close_when_stopped, args=(sender,), daemon=True).start()
            for line in sender.stdout:
                sent = json.loads(line)
                if "token" in sent:
                    self.accepted.setdefault(sent["user"], []).append(sent["token"])
                else:
                    self.refused.append(f"{sent['user']}: {sent['refused']}")

    def _close_when_stopped(self, sender: subprocess.Popen[str]) -> None:
        self.stop.wait()
        assert sender.stdin is not None
        sender.stdin.write("stop\n")
        sender.stdin.close()

    def _log_in(self) -> None:
        port = self.loaded.estate.policies.ports.imaps.port
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with imaplib.IMAP4_SSL(self._proxy(), port, ssl_context=self._tls(), timeout=30) as imap:
                    imap.login(self.client, self.passwords[self.client])
                    imap.select("INBOX", readonly=True)
                self.imap.append(Attempt(started, time.monotonic(), ok=True))
            except (imaplib.IMAP4.error, OSError):
                self.imap.append(Attempt(started, time.monotonic(), ok=False))
            time.sleep(self.pause)

    def _download(self) -> None:
        port = self.loaded.estate.policies.ports.pop3s.port
        seen: set[str] = set()  # the unique ids downloaded, as a POP client keeps them
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                pop = poplib.POP3_SSL(self._proxy(), port, context=self._tls(), timeout=30)
                try:
                    pop.user(self.client)
                    pop.pass_(self.passwords[self.client])
                    for line in pop.uidl()[1]:
                        number, uid = line.decode().split()
                        if uid not in seen:
                            self._keep(pop.retr(int(number))[1])
                            seen.add(uid)
                finally:
                    pop.quit()
                self.pop.append(Attempt(started, time.monotonic(), ok=True))
            except (poplib.error_proto, OSError):
                self.pop.append(Attempt(started, time.monotonic(), ok=False))
            time.sleep(self.pause)

    def _keep(self, lines: list[bytes]) -> None:
        subject = next((line.decode().removeprefix("Subject: ") for line in lines if line.startswith(b"Subject: ")), "")
        self.downloaded[subject] = self.downloaded.get(subject, 0) + 1

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=work) for work in (self._send, self._log_in, self._download)]
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


def mailbox(loaded: LoadedEstate, ca: Path, user: str, password: str) -> Mailbox:
    """``user``'s INBOX through the first proxy: over IMAP, then POP's unique ids."""
    estate = loaded.estate
    proxy = str(loaded.addresses[sorted(estate.services.proxy.hosts)[0]])
    context = ssl.create_default_context(cafile=str(ca))
    with imaplib.IMAP4_SSL(proxy, estate.policies.ports.imaps.port, ssl_context=context, timeout=30) as imap:
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
    pop = poplib.POP3_SSL(proxy, estate.policies.ports.pop3s.port, context=context, timeout=30)
    try:
        pop.user(user)
        pop.pass_(password)
        uidls = {line.split()[1].decode() for line in pop.uidl()[1]}
    finally:
        pop.quit()
    return Mailbox(uidvalidity, uids, copies, flagged, uidls)
