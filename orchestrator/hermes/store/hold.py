"""Holding a store pair: its users' mail waits in the MX hosts' queues and their logins are
refused with a temporary failure at the proxies, until the pair is released.

A hold is an operation's state, not the estate's. It lives in one file per host, which the
roles only create (empty) and never overwrite: Exim's holds file on each MX (``pair: why``
lines, read by the ``store_held`` router at every delivery) and Dovecot's holds map on each
proxy (the held pairs' users, each refused with ``nologin temp``). Each file names the pairs
it holds, so holding and releasing are idempotent and several pairs can be held at once.

Holding kicks the pair's users' proxied sessions, so nothing changes their mailboxes once
the hold stands. Releasing forces a queue run of the messages for the mail domain on each MX,
and reports how many messages for the pair were queued before and after it.

:func:`mx_holds_text`, :func:`proxy_holds_text`, :func:`held_pairs` and
:func:`queued_for` are pure; :func:`hold` and :func:`release` reach the hosts through a
:class:`~hermes.store.runner.CommandRunner`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from hermes.errors import HermesError, UsageError
from hermes.loader import LoadedEstate
from hermes.store.runner import CommandRunner, on_each
from hermes.topology import users_by_pair

# A release's forced runs on each MX while what the hold kept is still there, this far apart,
# for up to a minute: a run skips a message another delivery process has locked, and one
# process can hold several in turn, each waiting out the MX's LMTP connect timeout (roles/mta:
# mta_lmtp_connect_timeout, 10 s). Four runs in 15 s left 5 of 15 messages queued in a lab
# reattach on a busy machine (2026-12-03); they went at the next retry.
FLUSH_RUNS = 13
FLUSH_PAUSE_SECONDS = 5.0

# The files the roles create (roles/mta/vars/main.yml _mta_store_holds_file,
# roles/imap_proxy/vars/main/role.yml _imap_proxy_holds_map; tests/test_store_hold.py
# checks they agree), with the group that must read them.
MX_HOLDS_FILE = "/etc/exim4/hermes/held-pairs"
MX_GROUP = "Debian-exim"
PROXY_HOLDS_MAP = "/etc/dovecot/hermes/held.map"
PROXY_GROUP = "dovecot"

ROOT = "root"
_MX_HEADER = "# Exim lsearch file: <store pair>: <why>. Written by `hermesctl store hold`; empty when\n# no pair is held.\n"
_PROXY_HEADER = (
    "# Dovecot passwd-file: users of store pairs held by `hermesctl store hold`, refused with a\n"
    "# temporary failure until released. Empty when no pair is held.\n"
)
_PROXY_PAIR = "# pair "
# A held user is proxied to a closed port on the proxy's loopback: Dovecot answers IMAP
# NO [UNAVAILABLE] / POP3 -ERR [SYS/TEMP] "Account is temporarily unavailable" (after its
# login_proxy_max_reconnects one-second retries), which clients treat as temporary.
# nologin would answer [CONTACTADMIN] "Login disabled", a permanent refusal to a client.
# The password goes nowhere (nopassword: whatever it is); port 1 (tcpmux) is never served.
_PROXY_FIELDS = "proxy=y nopassword=y host=localhost hostip=127.0.0.1 port=1"
_REASON = "held by hermesctl"
MAP_RELOAD_SECONDS = 1.1


@dataclass(frozen=True)
class HoldTargets:
    """Where a hold is written, and what it covers."""

    mail_domain: str
    mx_hosts: tuple[str, ...]
    proxy_hosts: tuple[str, ...]
    users: Mapping[str, tuple[str, ...]]  # pair -> its users

    def check(self, pair: str) -> None:
        if pair not in self.users:
            raise UsageError(f"no store pair {pair} (pairs: {', '.join(sorted(self.users))})")


@dataclass(frozen=True)
class HostHold:
    """One host after a hold or a release: the pairs it holds now."""

    host: str
    service: str  # "mx" or "proxy"
    held: tuple[str, ...]
    changed: bool
    queued_before: int | None = None  # MX, release: the pair's messages on the queue
    queued_after: int | None = None
    flush_seconds: float | None = None
    flush_error: str | None = None  # the forced run failed: the mail waits for its retry time

    @property
    def waiting(self) -> bool:
        """Mail for the pair still on this MX's queue, or not known to have left it."""
        return bool(self.queued_after) or self.flush_error is not None


def hold_targets(loaded: LoadedEstate) -> HoldTargets:
    services = loaded.estate.services
    by_pair = users_by_pair(loaded.placement)
    return HoldTargets(
        mail_domain=loaded.estate.domains.mail,
        mx_hosts=tuple(services.mx.hosts),
        proxy_hosts=tuple(services.proxy.hosts),
        users={p.name: by_pair.get(p.name, ()) for p in services.store_pairs},
    )


def mx_holds_text(pairs: Iterable[str]) -> str:
    return _MX_HEADER + "".join(f"{pair}: {_REASON}\n" for pair in sorted(set(pairs)))


def proxy_holds_text(pairs: Iterable[str], users: Mapping[str, Sequence[str]]) -> str:
    sections = (
        _PROXY_PAIR + pair + "\n" + "".join(f"{user}:::::::{_PROXY_FIELDS}\n" for user in users[pair])
        for pair in sorted(set(pairs))
    )
    return _PROXY_HEADER + "".join(sections)


def held_pairs(text: str, service: str) -> frozenset[str]:
    """The pairs a holds file names (an MX's or a proxy's)."""
    if service == "mx":
        lines = (line.partition(":")[0].strip() for line in text.splitlines() if not line.startswith("#"))
        return frozenset(line for line in lines if line)
    return frozenset(line.removeprefix(_PROXY_PAIR).strip() for line in text.splitlines() if line.startswith(_PROXY_PAIR))


_QUEUE_HEAD = re.compile(r"^\s*\S+\s+\S+\s+(\S{6}-\S{6,11}-\S{2,4})\s")  # age size id <sender>


def queued_for(queue_listing: str, mail_domain: str, users: Iterable[str]) -> frozenset[str]:
    """The ids of the messages in ``exim -bp`` output with an undelivered recipient among
    ``users``@``mail_domain``."""
    wanted = {f"{user}@{mail_domain}".lower() for user in users}
    found: set[str] = set()
    message = None
    for line in queue_listing.splitlines():
        if head := _QUEUE_HEAD.match(line):
            message = head.group(1)
            continue
        recipient = line.strip()
        if message and recipient and not recipient.startswith("D ") and recipient.lower() in wanted:
            found.add(message)
    return frozenset(found)


def _read(runner: CommandRunner, host: str, path: str) -> str:
    return runner.run(host, ["cat", path], user=ROOT)


def _write(runner: CommandRunner, host: str, path: str, group: str, text: str) -> None:
    """Replace ``path`` by rename, so its reader sees the old file or the new, never half of one."""
    script = 'umask 027 && cat > "$1.new" && chgrp "$2" "$1.new" && mv -f "$1.new" "$1"'
    runner.run(host, ["sh", "-c", script, "sh", path, group], user=ROOT, stdin=text)


def _set(runner: CommandRunner, targets: HoldTargets, pair: str, *, held: bool) -> list[HostHold]:
    """Hold or release ``pair`` in every MX's and proxy's file, all hosts at once."""

    def on(host_service: tuple[str, str]) -> HostHold:
        host, service = host_service
        path, group = (MX_HOLDS_FILE, MX_GROUP) if service == "mx" else (PROXY_HOLDS_MAP, PROXY_GROUP)
        before = held_pairs(_read(runner, host, path), service)
        after = before | {pair} if held else before - {pair}
        text = mx_holds_text(after) if service == "mx" else proxy_holds_text(after, targets.users)
        if after != before:
            _write(runner, host, path, group, text)
        return HostHold(host, service, tuple(sorted(after)), after != before)

    hosts = [(h, "mx") for h in targets.mx_hosts] + [(h, "proxy") for h in targets.proxy_hosts]
    return on_each(hosts, on)


def holding(runner: CommandRunner, targets: HoldTargets, pair: str) -> list[str]:
    """The MX hosts and proxies whose holds file names ``pair``."""

    def on(host_service: tuple[str, str]) -> str | None:
        host, service = host_service
        path = MX_HOLDS_FILE if service == "mx" else PROXY_HOLDS_MAP
        return host if pair in held_pairs(_read(runner, host, path), service) else None

    hosts = [(h, "mx") for h in targets.mx_hosts] + [(h, "proxy") for h in targets.proxy_hosts]
    return [host for host in on_each(hosts, on) if host is not None]


def hold(runner: CommandRunner, targets: HoldTargets, pair: str) -> list[HostHold]:
    """Hold ``pair`` on every MX and proxy, then end its users' proxied sessions."""
    targets.check(pair)
    results = _set(runner, targets, pair, held=True)
    users = list(targets.users[pair])
    if any(r.changed for r in results if r.service == "proxy"):
        # Dovecot stat()s a passwd-file at most once a second: after that, every login reads
        # the new map, so a kicked client that reconnects at once is refused too.
        time.sleep(MAP_RELOAD_SECONDS)
    if users:
        on_each(targets.proxy_hosts, lambda host: runner.run(host, ["doveadm", "proxy", "kick", *users], user=ROOT))
    return results


def release(runner: CommandRunner, targets: HoldTargets, pair: str) -> list[HostHold]:
    """Release ``pair`` everywhere, then deliver what its hold kept on each MX's queue.

    Every holds file is rewritten first (a host that cannot be reached raises: the pair may
    still be held there). A flush that fails is reported in its host's result, not raised:
    the pair is released by then, and the mail waits for its next retry."""
    return drain(runner, targets, pair, lift(runner, targets, pair))


def lift(runner: CommandRunner, targets: HoldTargets, pair: str) -> list[HostHold]:
    """Remove ``pair`` from every holds file: logins and deliveries go ahead from now."""
    targets.check(pair)
    return _set(runner, targets, pair, held=False)


def drain(runner: CommandRunner, targets: HoldTargets, pair: str, lifted: Sequence[HostHold]) -> list[HostHold]:
    """Deliver what the hold kept on each MX's queue, all MX hosts at once (:func:`release`)."""
    return on_each(lifted, lambda r: _flush(runner, targets, pair, r) if r.service == "mx" else r)


def _flush(runner: CommandRunner, targets: HoldTargets, pair: str, result: HostHold) -> HostHold:
    """Deliver what the hold kept on one MX: a forced run, again while some of it is still there
    (a message another delivery process has locked, such as one still waiting on a dead
    member's connection, is skipped by a run). Mail arriving meanwhile is not counted."""
    users = targets.users[pair]
    started = time.monotonic()

    def queued() -> frozenset[str]:
        return queued_for(runner.run(result.host, ["exim4", "-bp"], user=ROOT), targets.mail_domain, users)

    try:
        kept = left = queued()
        for attempt in range(FLUSH_RUNS):
            if attempt:
                time.sleep(FLUSH_PAUSE_SECONDS)
            # A forced run of the messages with a recipient in the mail domain (their other
            # recipients are tried too): what the hold deferred.
            runner.run(result.host, ["exim4", "-Rf", "@" + targets.mail_domain], user=ROOT)
            left = kept & queued()
            if not left:
                break
    except HermesError as error:
        return replace(result, flush_seconds=time.monotonic() - started, flush_error=str(error))
    return replace(result, queued_before=len(kept), queued_after=len(left), flush_seconds=time.monotonic() - started)
