"""``hermesctl check``: the live estate, probed as its users and the world use it.

Every probe talks a real protocol to a real host of the estate, from the machine running
hermesctl, with TLS verified against the estate's CA: DNS answers from each DNS host, mail in
through each MX (port 25, as a stranger), submission with AUTH through each MX, the mail found
over IMAP and POP through each proxy for a user on each store pair, replication caught up on
each pair, a webmail login over HTTPS, and a list post reaching a member. Each probe's message
carries a token of this run; the probes delete what they delivered once they have found it.

:func:`plan_probes` is pure (estate -> the probes, in order, with their users); :func:`run`
runs them; the CLI prints the results.
"""

from __future__ import annotations

import email
import email.message
import http.client
import http.cookies
import imaplib
import poplib
import re
import secrets
import smtplib
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import dns.exception
import dns.resolver

from hermes.loader import LoadedEstate
from hermes.model.policies import MailboxTls
from hermes.render.dns import mail_domains, mail_exchangers, pools
from hermes.store.check import check_pairs, pair_specs
from hermes.store.runner import CommandRunner

# How long a message may take from acceptance to the mailbox (and a list post through
# Mailman), and replication to catch up, before the probe fails.
DELIVERY_TIMEOUT = 60.0
TIMEOUT = 15.0
HEADER = "X-Hermes-Check"
# What the hubs add to outside mail (roles/mta, acl_check_data).
SPAM_STATUS, SPAM_UNSCANNED = "X-Spam-Status", "X-Spam-Unscanned"


@dataclass(frozen=True)
class Result:
    probe: str
    target: str
    ok: bool
    seconds: float
    detail: str


@dataclass(frozen=True)
class Users:
    """One user per store pair (the first placed on it who has a password), and their passwords."""

    by_pair: Mapping[str, str]
    passwords: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class SpamHeaders:
    """What a hub wrote about an outside message: its verdict, or why there is none."""

    status: str | None
    unscanned: str | None


@dataclass
class Context:
    loaded: LoadedEstate
    users: Users
    tls: ssl.SSLContext
    store_runner: CommandRunner
    token: str = field(default_factory=lambda: secrets.token_hex(6))
    # user -> tokens of the messages sent to them that the mailbox probes must find.
    expected: dict[str, set[str]] = field(default_factory=dict)
    # token -> the MX a stranger's message went in through; MX -> the spam headers they arrived with.
    incoming: dict[str, str] = field(default_factory=dict)
    verdicts: dict[str, list[SpamHeaders]] = field(default_factory=dict)

    def address(self, host: str) -> str:
        return str(self.loaded.addresses[host])

    def mailbox(self, user: str) -> str:
        return f"{user}@{self.loaded.estate.domains.mail}"


def probe_users(loaded: LoadedEstate, passwords: Mapping[str, str]) -> Users:
    """The probe user of each pair, in pair order; a pair with no such user has none. Never a
    shared account: the probes use POP, which the proxies refuse them."""
    chosen: dict[str, str] = {}
    for user in sorted(loaded.placement):
        pair = loaded.placement[user]
        if pair not in chosen and passwords.get(user) and user not in loaded.shared_accounts:
            chosen[pair] = user
    order = [p.name for p in loaded.estate.services.store_pairs]
    return Users({p: chosen[p] for p in order if p in chosen}, dict(passwords))


def _timed(probe: str, target: str, action: Callable[[], str]) -> Result:
    started = time.monotonic()
    try:
        detail, ok = action(), True
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error, poplib.error_proto, dns.exception.DNSException) as error:
        detail, ok = f"{type(error).__name__}: {error}", False
    except ProbeFailed as failure:
        detail, ok = str(failure), False
    return Result(probe, target, ok, round(time.monotonic() - started, 2), detail)


class ProbeFailed(Exception):
    """A probe got an answer, and the answer is wrong."""


def _message(context: Context, sender: str, recipient: str, what: str) -> tuple[email.message.EmailMessage, str]:
    token = f"{context.token}-{secrets.token_hex(3)}"
    message = email.message.EmailMessage()
    message["From"], message["To"] = sender, recipient
    message["Subject"] = f"hermesctl check: {what}"
    message[HEADER] = token
    message.set_content(f"A probe of hermesctl check ({what}); it deletes itself once found.\n")
    return message, token


# -- DNS ------------------------------------------------------------------------------------


def _dns(context: Context, host: str) -> str:
    estate = context.loaded.estate
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.lifetime = [context.address(host)], TIMEOUT
    zone = estate.domains.hosts

    def kind(addresses: set[str]) -> str:
        return "AAAA" if any(":" in a for a in addresses) else "A"

    wanted: dict[tuple[str, str], set[str]] = {}
    for name in sorted(h.name for h in estate.hosts):
        wanted[(f"{name}.{zone}", kind({context.address(name)}))] = {context.address(name)}
    for pool, members in pools(estate).items():
        addresses = {context.address(h) for h in members}
        wanted[(f"{pool}.{zone}", kind(addresses))] = addresses
    exchangers = {f"{mx['host']}." for mx in mail_exchangers(estate)}
    for domain in mail_domains(estate):
        wanted[(domain, "MX")] = exchangers
    wrong = []
    for (name, rtype), expected in wanted.items():
        answer = resolver.resolve(name, rtype)
        got = {r.exchange.to_text() if rtype == "MX" else r.to_text() for r in answer}
        if got != expected:
            wrong.append(f"{name} {rtype}: {sorted(got)}, not {sorted(expected)}")
    if wrong:
        raise ProbeFailed("; ".join(wrong))
    return f"{len(wanted)} names answered as the estate says"


# -- SMTP -----------------------------------------------------------------------------------


def _smtp_in(context: Context, mx: str) -> str:
    """Port 25 as a stranger: one message to each pair's user, STARTTLS if offered."""
    port = context.loaded.estate.policies.ports.smtp.port
    recipients = list(context.users.by_pair.values())
    with smtplib.SMTP(context.address(mx), port, timeout=TIMEOUT, local_hostname=f"check.{context.token}.invalid") as smtp:
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=context.tls)
            smtp.ehlo()
        for user in recipients:
            message, token = _message(context, f"check@{context.token}.invalid", context.mailbox(user), f"in via {mx}")
            # The null sender: whatever becomes of a probe, it never bounces to anyone.
            smtp.send_message(message, from_addr="")
            context.expected.setdefault(user, set()).add(token)
            context.incoming[token] = mx
    return f"accepted for {', '.join(recipients)}"


def _submit(context: Context, mx: str, user: str) -> smtplib.SMTP:
    """A session on the MX's submission port (or smtps when submission is off), logged in as ``user``."""
    ports = context.loaded.estate.policies.ports
    smtp: smtplib.SMTP
    if ports.submission.enabled:
        smtp = smtplib.SMTP(context.address(mx), ports.submission.port, timeout=TIMEOUT)
        smtp.starttls(context=context.tls)
    else:
        smtp = smtplib.SMTP_SSL(context.address(mx), ports.smtps.port, timeout=TIMEOUT, context=context.tls)
    smtp.ehlo()
    smtp.login(user, context.users.passwords[user])
    return smtp


def _submission(context: Context, mx: str) -> str:
    """Submission with AUTH as the first pair's user, to the last pair's."""
    sender, recipient = next(iter(context.users.by_pair.values())), list(context.users.by_pair.values())[-1]
    with _submit(context, mx, sender) as smtp:
        message, token = _message(context, context.mailbox(sender), context.mailbox(recipient), f"submitted via {mx}")
        smtp.send_message(message)
    context.expected.setdefault(recipient, set()).add(token)
    return f"{sender} -> {recipient}"


# -- Mailboxes ------------------------------------------------------------------------------


def _imap_connect(context: Context, proxy: str) -> imaplib.IMAP4:
    ports = context.loaded.estate.policies.ports
    if ports.imaps.enabled:
        return imaplib.IMAP4_SSL(context.address(proxy), ports.imaps.port, ssl_context=context.tls, timeout=TIMEOUT)
    imap = imaplib.IMAP4(context.address(proxy), ports.imap.port, timeout=TIMEOUT)
    if ports.imap.tls is MailboxTls.STARTTLS:
        imap.starttls(ssl_context=context.tls)
    return imap


def _found(imap: imaplib.IMAP4, tokens: set[str]) -> dict[str, bytes]:
    imap.select("INBOX")
    found = {}
    for token in sorted(tokens):
        _, data = imap.uid("SEARCH", "HEADER", HEADER, token)
        uids = data[0].split() if data and data[0] else []
        if uids:
            found[token] = uids[0]
    return found


def _imap(context: Context, proxy: str, user: str, *, delete: bool) -> str:
    """Log in through the proxy and find every probe message sent to the user (waiting for delivery)."""
    tokens = context.expected.get(user, set())
    with _imap_connect(context, proxy) as imap:
        imap.login(user, context.users.passwords[user])
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        found = _found(imap, tokens)
        while len(found) < len(tokens) and time.monotonic() < deadline:
            time.sleep(1)
            found = _found(imap, tokens)
        if len(found) < len(tokens):
            raise ProbeFailed(f"{len(tokens) - len(found)} of {len(tokens)} probe messages not in {user}'s INBOX")
        _read_verdicts(context, imap, [uid for token, uid in found.items() if token in context.incoming])
        if delete and found:
            imap.uid("STORE", b",".join(found.values()).decode(), "+FLAGS.SILENT", r"(\Deleted)")
            imap.expunge()
    return f"{user}: {len(found)} probe messages found"


def _read_verdicts(context: Context, imap: imaplib.IMAP4, uids: list[bytes]) -> None:
    """Keep the spam headers of the strangers' messages among ``uids``, by the MX they went in through."""
    if not uids:
        return
    fields = f"{HEADER} {SPAM_STATUS} {SPAM_UNSCANNED}".upper()
    _, data = imap.uid("FETCH", b",".join(uids).decode(), f"(BODY.PEEK[HEADER.FIELDS ({fields})])")
    for part in data:
        if isinstance(part, tuple):
            headers = email.message_from_bytes(part[1])
            mx = context.incoming.get(str(headers[HEADER]))
            if mx is not None:
                verdict = SpamHeaders(headers[SPAM_STATUS], headers[SPAM_UNSCANNED])
                context.verdicts.setdefault(mx, []).append(verdict)


def _pop_headers(context: Context, proxy: str, user: str) -> tuple[int, str]:
    """One POP session: the number of messages and all their headers."""
    ports = context.loaded.estate.policies.ports
    pop: poplib.POP3
    if ports.pop3s.enabled:
        pop = poplib.POP3_SSL(context.address(proxy), ports.pop3s.port, timeout=TIMEOUT, context=context.tls)
    else:
        pop = poplib.POP3(context.address(proxy), ports.pop3.port, timeout=TIMEOUT)
        pop.stls(context=context.tls)
    try:
        pop.user(user)
        pop.pass_(context.users.passwords[user])
        count, _ = pop.stat()
        headers = b"\n".join(line for n in range(1, count + 1) for line in pop.top(n, 0)[1])
    finally:
        pop.quit()
    return count, headers.decode(errors="replace")


def _pop(context: Context, proxy: str, user: str) -> str:
    """Log in through the proxy and find every probe message sent to the user (waiting for delivery)."""
    tokens = context.expected.get(user, set())
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        count, headers = _pop_headers(context, proxy, user)
        missing = [t for t in tokens if f"{HEADER}: {t}" not in headers]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    if missing:
        raise ProbeFailed(f"{len(missing)} of {len(tokens)} probe messages not among {user}'s {count} messages")
    return f"{user}: {len(tokens)} probe messages among {count}"


# -- Replication ----------------------------------------------------------------------------


def _replication(context: Context, pair: str) -> str:
    specs = pair_specs(context.loaded, [pair])
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        (status,) = check_pairs(specs, context.store_runner)
        if status.in_sync or time.monotonic() > deadline:
            break
        time.sleep(2)
    behind = [c for c in status.channels if not c.in_sync]
    if behind:
        raise ProbeFailed("; ".join(f"{c.target}: not caught up with {status.live}" for c in behind))
    return f"{status.live} -> {', '.join(c.target for c in status.channels)} caught up"


# -- Spam scanning --------------------------------------------------------------------------


def _spam_scan(context: Context, mx: str) -> str:
    """The stranger's messages through ``mx`` arrived with the hub's spam verdict, none marked unscanned."""
    verdicts = context.verdicts.get(mx, [])
    if not verdicts:
        raise ProbeFailed("none of the messages sent in through it was read back")
    if unscanned := sorted({v.unscanned for v in verdicts if v.unscanned}):
        raise ProbeFailed(f"delivered unscanned: {'; '.join(unscanned)}")
    if any(v.status is None for v in verdicts):
        raise ProbeFailed(f"delivered without the hub's {SPAM_STATUS}")
    return f"{len(verdicts)} messages scanned ({verdicts[0].status})"


# -- Webmail --------------------------------------------------------------------------------


def _webmail(context: Context, host: str) -> str:
    """Roundcube's login form over HTTPS, then the mailbox it opens."""
    user = next(iter(context.users.by_pair.values()))
    name = f"webmail.{context.loaded.estate.domains.hosts}"
    cookies: http.cookies.SimpleCookie = http.cookies.SimpleCookie()

    def request(method: str, path: str, body: str | None = None) -> tuple[int, str, bytes]:
        """(status, Location, body), keeping the cookies it sets."""
        connection = http.client.HTTPSConnection(context.address(host), 443, timeout=TIMEOUT, context=context.tls)
        headers = {"Host": name, "Cookie": "; ".join(f"{k}={v.value}" for k, v in cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        for header in response.msg.get_all("Set-Cookie") or []:
            cookies.load(header)
        answer = (response.status, response.getheader("Location") or "", response.read())
        connection.close()
        return answer

    status, _, page = request("GET", "/")
    match = re.search(rb'name="_token" value="([^"]+)"', page)
    if status != 200 or match is None:
        raise ProbeFailed(f"GET / gave {status} without Roundcube's login form")
    form = {"_token": match.group(1).decode(), "_task": "login", "_action": "login", "_timezone": "UTC", "_url": ""}
    form |= {"_user": user, "_pass": context.users.passwords[user]}
    status, location, _ = request("POST", "/?_task=login", urllib.parse.urlencode(form))
    if status != 302 or "_task=mail" not in location:
        raise ProbeFailed(f"login as {user} gave {status} {location or 'without a redirect'}")
    status, _, inbox = request("GET", urllib.parse.urlsplit(location)._replace(scheme="", netloc="").geturl() or "/?_task=mail")
    if status != 200 or b"mailboxlist" not in inbox:
        raise ProbeFailed(f"after login, the mailbox page gave {status} without the folder list")
    return f"{user} logged in and saw the folder list"


# -- Lists ----------------------------------------------------------------------------------


def _list_post(context: Context, mx: str) -> str:
    """A member posts to a list through submission; the post must reach a probe user who is a member."""
    estate = context.loaded.estate
    probes = set(context.users.by_pair.values())
    for mailing_list in estate.services.lists.lists:
        readers = sorted(probes & set(mailing_list.members))
        posters = sorted(probes & (set(mailing_list.members) | set(mailing_list.owners)))
        if readers and posters:
            break
    else:
        raise ProbeFailed("no list has a probe user among its members")
    sender, address = posters[0], f"{mailing_list.name}@{estate.services.lists.domain}"
    with _submit(context, mx, sender) as smtp:
        message, token = _message(context, context.mailbox(sender), address, f"post to {address}")
        smtp.send_message(message)
    for reader in readers:
        context.expected.setdefault(reader, set()).add(token)
    return f"{sender} posted to {address}; for {', '.join(readers)}"


# -- The plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    name: str
    target: str
    action: Callable[[Context], str]


def plan_probes(loaded: LoadedEstate, users: Users) -> list[Probe]:
    """Every probe, in the order they run: mail is sent before the mailboxes are read."""
    services = loaded.estate.services
    probes = [Probe("dns", h, partial(_dns, host=h)) for h in sorted(services.dns.hosts)]
    for mx in sorted(services.mx.hosts):
        probes.append(Probe("smtp in", mx, partial(_smtp_in, mx=mx)))
        probes.append(Probe("submission", mx, partial(_submission, mx=mx)))
    if services.lists.lists:
        first = sorted(services.mx.hosts)[0]
        probes.append(Probe("list post", first, partial(_list_post, mx=first)))
    proxies = sorted(services.proxy.hosts)
    for pair, user in users.by_pair.items():
        for index, proxy in enumerate(proxies):
            # The last proxy's probe deletes what the probes delivered.
            last = index == len(proxies) - 1
            probes.append(Probe("pop", f"{proxy}: {pair}", partial(_pop, proxy=proxy, user=user)))
            probes.append(Probe("imap", f"{proxy}: {pair}", partial(_imap, proxy=proxy, user=user, delete=last)))
    probes += [Probe("spam scan", mx, partial(_spam_scan, mx=mx)) for mx in sorted(services.mx.hosts)]
    probes += [Probe("replication", p.name, partial(_replication, pair=p.name)) for p in services.store_pairs]
    probes += [Probe("webmail", h, partial(_webmail, host=h)) for h in sorted(services.webmail.hosts)]
    return probes


def run(context: Context, probes: Sequence[Probe], on_result: Callable[[Result], None]) -> list[Result]:
    results = []
    for probe in probes:
        result = _timed(probe.name, probe.target, partial(probe.action, context))
        on_result(result)
        results.append(result)
    return results


def document(results: Sequence[Result]) -> dict[str, Any]:
    return {"ok": all(r.ok for r in results), "results": [asdict(r) for r in results]}
