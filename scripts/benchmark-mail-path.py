#!/usr/bin/env python3
"""Mail through the deployed lab's hubs as fast as they take it: what was accepted, how soon each
message reached every copy of its mailbox, what each host spent, and whether anything was lost.

    .venv/bin/python scripts/benchmark-mail-path.py [--messages 1000] [--connections 8]
        [--per-connection 5 50] [--path internet relay] [--json out.json]

Run as root on the machine of the lab (scripts/lab.sh brings it up and deploys it). Each run
(one path at one number of messages per connection) sends --messages messages of about 4 KB to
the estate's users in turn, on --connections SMTP connections at once, each to the next MX in
turn, from:

* ``internet``: the Internet side's client (``internet-client``), a stranger: DNSBL and sender
  checks at RCPT, then ClamAV and SpamAssassin;
* ``relay``: the lists host, a relay host: ClamAV only (no spam scan for relay hosts).

A watcher logs in to each pair's live member, its spare and its backup server as their
administrator (from the lab machine, a management network) and notes when each message first
appears in its user's INBOX there (polled every 0.2 s). Per run: offered and accepted msg/s
(messages over the sending time), delivered msg/s (accepted messages over the time from the
first offered to the last one reaching its live member), latency from acceptance to the live
member, the spare and the backup server (p50, p99, max), CPU seconds each container spent, and
the count of messages refused, lost (accepted, never in the mailbox) and duplicated (in it more
than once), which must be 0.

The messages stay in the users' mailboxes (Subject ``bench <run>-<n>``).
"""

from __future__ import annotations

import imaplib
import json
import os
import ssl
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes.lab import internet
from hermes.lab.benchmark import benchmark_parser
from hermes.lab.podman import podman
from hermes.lab.vault import read_lab_vault
from hermes.loader import LoadedEstate, load_estate
from hermes.paths import LAB_STATE, PROJECT_ROOT

POLL_SECONDS = 0.2
COPIES = ("live", "spare", "backup")
# The Cyrus administrator (the cyrus_store role's cyrus_store_admin_user); its password is per pair.
ADMIN_USER = "cyrus"
SETTLE_SECONDS = 180  # after the last message is offered, how long every copy may take to appear

# Runs on the sending container: Python's standard library only. Prints one JSON line per message.
_SENDER = """
import json, smtplib, sys, threading, time
from email.message import EmailMessage
hubs, domain, users, run, messages, connections, per_connection = json.loads(sys.argv[1])
body = ("hermes mail-path benchmark " * 3 + "\\n") * 50
lock = threading.Lock()
numbers = iter(range(messages))

def emit(record):
    with lock:
        print(json.dumps(record), flush=True)

def batch():
    with lock:
        return [n for n in (next(numbers, None) for _ in range(per_connection)) if n is not None]

def work(turn):
    while numbers_ := batch():
        hub = hubs[turn % len(hubs)]
        turn += connections
        try:
            smtp = smtplib.SMTP(hub, 25, local_hostname="client.bench.test", timeout=120)
        except OSError as error:
            for n in numbers_:
                emit({"n": n, "failed": repr(error)})
            continue
        with smtp:
            for n in numbers_:
                user = users[n % len(users)]
                message = EmailMessage()
                message["From"], message["To"] = "sender@internet.test", f"{user}@{domain}"
                message["Subject"] = f"bench {run}-{n}"
                message.set_content(body)
                offered = time.time()
                try:
                    smtp.send_message(message)
                    emit({"n": n, "user": user, "offered": offered, "accepted": time.time()})
                except smtplib.SMTPResponseException as error:
                    emit({"n": n, "refused": error.smtp_code})
                except (smtplib.SMTPException, OSError) as error:
                    emit({"n": n, "failed": repr(error)})

threads = [threading.Thread(target=work, args=(i,)) for i in range(connections)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


@dataclass
class Watcher:
    """One user's INBOX on one store host, as the user sees it: when each benchmark message
    first appeared there, and how many copies of each."""

    address: str
    port: int
    password: str
    user: str
    context: ssl.SSLContext
    seen: dict[str, float] = field(default_factory=dict)
    copies: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    def watch(self) -> None:
        try:
            with imaplib.IMAP4_SSL(self.address, self.port, ssl_context=self.context, timeout=30) as imap:
                # Cyrus lets an administrator act as a user (the authorization id), reading what
                # the user reads: an administrator's own login has no right to read a mailbox.
                imap.authenticate("PLAIN", lambda _: f"{self.user}\0{ADMIN_USER}\0{self.password}".encode())
                if imap.select("INBOX", readonly=True)[0] != "OK":
                    raise imaplib.IMAP4.error("INBOX cannot be selected")
                last = self._last_uid(imap)
                while not self.stop.wait(POLL_SECONDS):
                    imap.noop()
                    last = self._fetch_after(imap, last)
                self._fetch_after(imap, last)
        except (imaplib.IMAP4.error, OSError) as error:
            self.error = f"{self.address} {self.user}: {error!r}"

    @staticmethod
    def _last_uid(imap: imaplib.IMAP4) -> int:
        _, data = imap.uid("SEARCH", "ALL")
        uids = data[0].split() if data and data[0] else []
        return int(uids[-1]) if uids else 0

    def _fetch_after(self, imap: imaplib.IMAP4, last: int) -> int:
        # "n:*" names the last message even when it is below n: only UIDs above ``last`` count.
        _, fetched = imap.uid("FETCH", f"{last + 1}:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        now = time.time()
        for item in fetched:
            if not isinstance(item, tuple):
                continue
            uid = int(item[0].split(b"UID ")[1].split()[0].rstrip(b")"))
            if uid <= last:
                continue
            subject = item[1].decode().strip().removeprefix("Subject: ")
            if subject.startswith("bench "):
                token = subject.removeprefix("bench ")
                self.seen.setdefault(token, now)
                self.copies[token] = self.copies.get(token, 0) + 1
            last = max(last, uid)
        return last


def cpu_seconds(hosts: list[str]) -> dict[str, float]:
    """Each container's CPU time so far (its cgroup's usage, as podman reads it)."""
    usage = dict(
        line.split() for line in podman("stats", "--no-stream", "--format", "{{.Name}} {{.CPUNano}}").stdout.splitlines()
    )
    return {host: int(usage[host]) / 1e9 for host in hosts}


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    # quantiles() needs two values; one value is its own p99.
    p99 = statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]
    return {"p50": round(statistics.median(values), 2), "p99": round(p99, 2), "max": round(max(values), 2)}


@dataclass(frozen=True)
class Lab:
    loaded: LoadedEstate
    vault: dict[str, Any]
    context: ssl.SSLContext

    def address(self, host: str) -> str:
        return str(self.loaded.addresses[host])

    def copies_of(self, pair: str) -> dict[str, str]:
        """Where each pair's mail is kept: its live member, its spare and its backup server."""
        spec = next(p for p in self.loaded.estate.services.store_pairs if p.name == pair)
        spare = spec.replica if spec.live == spec.master else spec.master
        return {"live": spec.live, "spare": spare, "backup": spec.backup}

    def admin_password(self, host: str, pair: str) -> str:
        passwords = self.vault["vault_hermes_cyrus_admin_passwords"]
        return str(passwords[host] if host in self.loaded.estate.services.backup.hosts else passwords[pair])


def run_once(lab: Lab, path: str, messages: int, connections: int, per_connection: int) -> dict[str, Any]:
    estate = lab.loaded.estate
    run = f"{path}-{per_connection}-{int(time.time())}"
    users = sorted(lab.loaded.placement)
    port = estate.policies.ports.imaps.port
    watchers: dict[tuple[str, str], Watcher] = {}
    for user in users:
        pair = lab.loaded.placement[user]
        for copy, host in lab.copies_of(pair).items():
            password = lab.admin_password(host, pair)
            watchers[(copy, user)] = Watcher(lab.address(host), port, password, user, lab.context)
    threads = [threading.Thread(target=w.watch) for w in watchers.values()]
    for thread in threads:
        thread.start()
    time.sleep(2)  # every watcher logged in and at the end of its mailbox
    hosts = sorted(h.name for h in estate.hosts)
    before = cpu_seconds(hosts)
    sender = internet.CLIENT[0] if path == "internet" else sorted(estate.services.lists.hosts)[0]
    hubs = [lab.address(h) for h in sorted(estate.services.mx.hosts)]
    config = json.dumps([hubs, estate.domains.mail, users, run, messages, connections, per_connection])
    started = time.time()
    records = [json.loads(line) for line in podman("exec", sender, "python3", "-c", _SENDER, config).stdout.splitlines()]
    sent = time.time()
    accepted = {f"{run}-{r['n']}": r for r in records if "accepted" in r}
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        if all(token in watchers[(copy, r["user"])].seen for token, r in accepted.items() for copy in COPIES):
            break
        time.sleep(1)
    after = cpu_seconds(hosts)
    for watcher in watchers.values():
        watcher.stop.set()
    for thread in threads:
        thread.join(timeout=60)
    if errors := [w.error for w in watchers.values() if w.error]:
        raise SystemExit("benchmark-mail-path: a watcher failed: " + "; ".join(errors))

    def latencies(copy: str) -> list[float]:
        return [
            watchers[(copy, r["user"])].seen[token] - r["accepted"]
            for token, r in accepted.items()
            if token in watchers[(copy, r["user"])].seen
        ]

    live_seen = [watchers[("live", r["user"])].seen.get(token) for token, r in accepted.items()]
    last_delivery = max((t for t in live_seen if t is not None), default=sent)
    return {
        "path": path,
        "connections": connections,
        "per_connection": per_connection,
        "offered": len(records),
        "accepted": len(accepted),
        "refused": sum("refused" in r for r in records),
        "failed": sum("failed" in r for r in records),
        "offered_per_second": round(len(records) / (sent - started), 1),
        "accepted_per_second": round(len(accepted) / (sent - started), 1),
        "delivered_per_second": round(len(accepted) / (last_delivery - started), 1),
        "latency_seconds": {copy: spread(latencies(copy)) for copy in COPIES},
        "lost": {copy: sum(token not in watchers[(copy, r["user"])].seen for token, r in accepted.items()) for copy in COPIES},
        "duplicated": sum(watchers[("live", r["user"])].copies.get(token, 0) > 1 for token, r in accepted.items()),
        "cpu_seconds": {host: round(after[host] - before[host], 1) for host in hosts},
    }


def summary(result: dict[str, Any]) -> str:
    def figures(spread_: dict[str, float] | None) -> str:
        return "-" if spread_ is None else f"p50 {spread_['p50']} s, p99 {spread_['p99']} s, max {spread_['max']} s"

    lines = [
        f"{result['path']}, {result['connections']} connections x {result['per_connection']} messages:",
        f"  offered {result['offered']} ({result['offered_per_second']}/s), accepted {result['accepted']} "
        f"({result['accepted_per_second']}/s), delivered {result['delivered_per_second']}/s; "
        f"refused {result['refused']}, failed {result['failed']}",
    ]
    for copy, spread_ in result["latency_seconds"].items():
        lines.append(f"  accepted -> {copy}: {figures(spread_)}; lost {result['lost'][copy]}")
    lines.append(f"  duplicated {result['duplicated']}")
    cpu = ", ".join(f"{h} {s}" for h, s in result["cpu_seconds"].items() if s >= 0.1)
    lines.append(f"  CPU seconds: {cpu}")
    return "\n".join(lines)


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--estate", type=Path, default=PROJECT_ROOT / "inventory" / "estates" / "lab.yml")
    parser.add_argument("--messages", type=int, default=1000, help="messages in each run")
    parser.add_argument("--connections", type=int, default=8, help="SMTP connections at once")
    parser.add_argument("--per-connection", type=int, nargs="+", default=[5, 50], help="messages on each connection")
    parser.add_argument("--path", nargs="+", choices=("internet", "relay"), default=["relay", "internet"])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("benchmark-mail-path: run as root (the lab's containers are root's)")
    loaded = load_estate(args.estate.resolve())
    state = LAB_STATE / loaded.estate.name
    vault = read_lab_vault(state / "vault.yml", state / "vault-password")
    lab = Lab(loaded, vault, ssl.create_default_context(cafile=str(LAB_STATE / "pki" / "ca.crt")))
    results = []
    for path in args.path:
        for per_connection in args.per_connection:
            results.append(run_once(lab, path, args.messages, args.connections, per_connection))
            print(summary(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    bad = [r for r in results if r["duplicated"] or any(r["lost"].values()) or r["failed"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
