"""Service policies, with the defaults the seeds give for Hermes."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Annotated

import netaddr
from pydantic import AfterValidator, ByteSize, Field, field_validator, model_validator

from hermes.model.base import DomainName, Size, StrictModel

# A TTL above 2^31 - 1 is read as 0 (RFC 2181 section 8).
MAX_TTL = 2**31 - 1
MAX_QUEUE_INTERVAL_SECONDS = 3600
_SECONDS = {"s": 1, "m": 60, "h": 3600}


class Quota(StrictModel):
    default: Size = Field(
        default=ByteSize(250_000_000),
        description="quota of an account without an override: at most maximum, and at least "
        "policies.message_size_limit (else a new mailbox could not take one largest message)",
    )
    maximum: Size = Field(default=ByteSize(1_000_000_000), description="largest quota any account may have")
    warning_percent: int = Field(
        default=90, ge=1, le=99, description="usage (1-99%) at which the user is warned: an IMAP alert and one message"
    )


class TlsMode(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"


class MailboxTls(StrEnum):
    """IMAP and POP always offer TLS: the store role has no plaintext-only listener."""

    STARTTLS = "starttls"
    IMPLICIT = "implicit"


class SmtpPort(StrictModel):
    enabled: bool = Field(default=True, description="whether the hubs listen at all")
    port: int = Field(ge=1, le=65535, description="TCP port")
    tls: TlsMode = Field(description="none (no TLS offered), STARTTLS on the plain port, or TLS from connect")
    auth: bool = Field(default=False, description="clients must authenticate to send anything (submission)")


class MailboxPort(StrictModel):
    enabled: bool = Field(default=True, description="whether the stores listen at all")
    port: int = Field(ge=1, le=65535, description="TCP port")
    tls: MailboxTls = Field(description="STARTTLS on the plain port, or TLS from connect; users always log in")


class Ports(StrictModel):
    """The TRIUMF service table: what listens where, and how TLS is offered. POP2 is not served."""

    smtp: SmtpPort = Field(
        default_factory=lambda: SmtpPort(port=25, tls=TlsMode.STARTTLS),
        description="SMTP from the Internet and relay hosts, on the hubs",
    )
    smtps: SmtpPort = Field(
        default_factory=lambda: SmtpPort(port=465, tls=TlsMode.IMPLICIT, auth=True),
        description="submission with TLS from connect, on the hubs",
    )
    submission: SmtpPort = Field(
        default_factory=lambda: SmtpPort(port=587, tls=TlsMode.STARTTLS, auth=True),
        description="message submission (587), on the hubs",
    )
    imap: MailboxPort = Field(
        default_factory=lambda: MailboxPort(port=143, tls=MailboxTls.STARTTLS), description="IMAP, on each pair's live member"
    )
    imaps: MailboxPort = Field(
        default_factory=lambda: MailboxPort(port=993, tls=MailboxTls.IMPLICIT),
        description="IMAP over TLS from connect, on each pair's live member",
    )
    pop3: MailboxPort = Field(
        default_factory=lambda: MailboxPort(port=110, tls=MailboxTls.STARTTLS), description="POP3, on each pair's live member"
    )
    pop3s: MailboxPort = Field(
        default_factory=lambda: MailboxPort(port=995, tls=MailboxTls.IMPLICIT),
        description="POP3 over TLS from connect, on each pair's live member",
    )

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        used: dict[int, str] = {}
        for name, spec in self:
            if spec.enabled and spec.port in used:
                raise ValueError(f"{name} and {used[spec.port]} both use port {spec.port}")
            used[spec.port] = name
        if self.smtp.auth:
            raise ValueError("smtp (port 25) receives mail from the Internet and cannot require auth")
        if not any(spec.enabled for spec in (self.smtp, self.smtps, self.submission)):
            raise ValueError("at least one of smtp, smtps and submission must be enabled")
        # Users (and webmail on their behalf) submit with their password and read over IMAP.
        if not (self.submission.enabled or self.smtps.enabled):
            raise ValueError("at least one of submission and smtps must be enabled: users could not send")
        if not (self.imap.enabled or self.imaps.enabled):
            raise ValueError("at least one of imap and imaps must be enabled: users could not read their mail")
        return self

    def smtp_ports(self) -> dict[str, SmtpPort]:
        return {"smtp": self.smtp, "smtps": self.smtps, "submission": self.submission}

    def mailbox_ports(self) -> dict[str, MailboxPort]:
        return {"imap": self.imap, "imaps": self.imaps, "pop3": self.pop3, "pop3s": self.pop3s}


# A DNSBL answers a listed IPv4 client with an A record in 127.0.0.0/8, and 127.0.0.1 never
# means listed (RFC 5782 sections 2.1 and 5). Spamhaus and others answer a query they refuse from
# 127.255.255.0/24 (127.255.255.254: asked through a public resolver; .255: over the query limit;
# .252: a typo in the zone): counted as listed, such an answer refuses every outside client.
DNSBL_ANSWERS = netaddr.IPNetwork("127.0.0.0/8")
DNSBL_ERRORS = netaddr.IPNetwork("127.255.255.0/24")
NEVER_LISTED = netaddr.IPAddress("127.0.0.1")
MAX_DNSBL_CODES = 256


def _ipv4(text: str, written: str) -> netaddr.IPAddress:
    try:
        return netaddr.IPAddress(text.strip(), version=4, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValueError(f"{written!r} is not an IPv4 address or a range of them such as 127.0.0.2-127.0.0.11") from None


def _bounds(written: str) -> tuple[netaddr.IPAddress, netaddr.IPAddress]:
    """The first and last address of a return code (127.0.0.2) or range of them (127.0.0.2-127.0.0.11)."""
    first, dash, last = written.partition("-")
    low = _ipv4(first, written)
    return low, (_ipv4(last, written) if dash else low)


def _return_codes(written: str) -> str:
    low, high = _bounds(written)
    if high < low:
        raise ValueError(f"{written} is a descending range: write the lower address first ({high}-{low})")
    text = str(low) if "-" not in written else f"{low}-{high}"
    if low not in DNSBL_ANSWERS or high not in DNSBL_ANSWERS:
        raise ValueError(f"{text} is outside 127.0.0.0/8: a DNSBL answers a listed client with an address there (RFC 5782)")
    if low <= NEVER_LISTED <= high:
        raise ValueError(
            f"{text} includes 127.0.0.1, which never means listed (RFC 5782)"
            if low != high
            else "127.0.0.1 never means listed (RFC 5782): a DNSBL lists no client with it"
        )
    if high >= DNSBL_ERRORS.network:
        raise ValueError(
            f"{text} {'reaches into' if low != high else 'is in'} 127.255.255.0/24, the answers DNSBLs give to queries "
            "they refuse (Spamhaus's 127.255.255.254 to a public resolver): counted as listed, they would refuse all "
            "outside mail"
        )
    return text


ReturnCodes = Annotated[
    str,
    AfterValidator(_return_codes),
    Field(description="an IPv4 address in 127.0.0.0/8, or an ascending range of them such as 127.0.0.2-127.0.0.11"),
]


class Dnsbl(StrictModel):
    """A DNS blocklist, and which of its answers mean a client is listed."""

    zone: DomainName = Field(description="the blocklist's DNS zone, e.g. zen.spamhaus.org")
    listed: list[ReturnCodes] = Field(
        min_length=1,
        description="the answers (return codes) that mean listed, as the DNSBL documents them: IPv4 addresses or "
        "ascending ranges such as 127.0.0.2-127.0.0.11, all in 127.0.0.0/8 (RFC 5782), never 127.0.0.1 nor in "
        f"127.255.255.0/24 (the error answers to refused or over-limit queries), at most {MAX_DNSBL_CODES} addresses "
        "in all, none twice; any other answer is ignored",
    )

    @model_validator(mode="before")
    @classmethod
    def _with_codes(cls, data: object) -> object:
        # Estates written before DNSBLs had return codes listed bare zones: any answer meant listed.
        if isinstance(data, str):
            raise ValueError(
                f"{data!r} needs the answers that mean listed: write {{zone: {data}, listed: [127.0.0.2]}} "
                "with the return codes the DNSBL documents"
            )
        return data

    @field_validator("listed")
    @classmethod
    def _few_and_distinct(cls, listed: list[str]) -> list[str]:
        ranges = [netaddr.IPRange(*_bounds(written)) for written in listed]
        total = sum(r.size for r in ranges)
        if total > MAX_DNSBL_CODES:
            raise ValueError(f"{total} addresses once the ranges are expanded, more than {MAX_DNSBL_CODES}")
        counts = Counter(address for r in ranges for address in r)
        twice = sorted(address for address, count in counts.items() if count > 1)
        if twice:
            raise ValueError(f"{', '.join(map(str, twice))} {'is' if len(twice) == 1 else 'are'} listed more than once")
        return listed

    def addresses(self) -> list[netaddr.IPAddress]:
        """Every answer that means listed, ranges expanded, in numerical order."""
        return sorted(address for written in self.listed for address in netaddr.IPRange(*_bounds(written)))


class Spam(StrictModel):
    dnsbls: list[Dnsbl] = Field(
        # Spamhaus ZEN: SBL 127.0.0.2, CSS .3, XBL .4-.7, DROP .9, PBL .10-.11.
        default_factory=lambda: [Dnsbl(zone="zen.spamhaus.org", listed=["127.0.0.2-127.0.0.11"])],
        description="DNS blocklists consulted for outside clients at connection time, each with the answers that "
        "mean listed (default: Spamhaus ZEN, zen.spamhaus.org with 127.0.0.2-127.0.0.11); the DNS hosts must not "
        "forward to a public resolver (services.dns.forwarders), which the DNSBLs refuse",
    )
    spamassassin_threshold: float = Field(default=5.0, gt=0, le=50, description="score at which mail is tagged as spam")
    reject_threshold: float | None = Field(
        default=None, gt=0, le=100, description="score at which mail is refused; none means tag only"
    )

    @field_validator("dnsbls")
    @classmethod
    def _each_zone_once(cls, dnsbls: list[Dnsbl]) -> list[Dnsbl]:
        zones = [d.zone for d in dnsbls]
        twice = sorted({zone for zone in zones if zones.count(zone) > 1})
        if twice:
            zones_twice = "; ".join(f"zone {zone!r} is listed more than once" for zone in twice)
            raise ValueError(f"{zones_twice}: give each DNSBL once, with all its return codes")
        return dnsbls

    @model_validator(mode="after")
    def _reject_above_tag(self) -> Spam:
        if self.reject_threshold is not None and self.reject_threshold <= self.spamassassin_threshold:
            raise ValueError("reject_threshold must be above spamassassin_threshold")
        return self


# An Exim time: a number and s, m, h or d.
_PERIOD = r"^[1-9][0-9]*[smhd]$"
# A message's recipients allowed by default in an outgoing rate limit, per message allowed.
RECIPIENTS_PER_MESSAGE_SENT = 10


class MessageRate(StrictModel):
    """Messages one sender (a host, a user) may send per period."""

    messages: int = Field(ge=1, description="messages per period")
    period: str = Field(pattern=_PERIOD, description="Exim-style period such as 1h")


class RateLimit(MessageRate):
    """What one authenticated user may send per period: messages, and recipients over all of
    them (one message to a thousand recipients is a thousand deliveries)."""

    recipients: int | None = Field(
        default=None,
        ge=1,
        description=f"recipients per period over all their messages; default {RECIPIENTS_PER_MESSAGE_SENT} per message",
    )

    @property
    def recipient_limit(self) -> int:
        """The recipients allowed per period, the default filled in."""
        return self.messages * RECIPIENTS_PER_MESSAGE_SENT if self.recipients is None else self.recipients

    @model_validator(mode="after")
    def _recipients_cover_messages(self) -> RateLimit:
        if self.recipients is not None and self.recipients < self.messages:
            raise ValueError(
                f"recipients ({self.recipients}) is below messages ({self.messages}): every message has a "
                "recipient, so the message limit could never be reached"
            )
        return self


class LoginThrottle(StrictModel):
    """Failed SMTP logins one host may make per period; beyond them its AUTH is refused."""

    failures: int = Field(default=10, ge=3, le=1000, description="failed logins per period (at least 3: people mistype)")
    period: str = Field(default="1h", pattern=_PERIOD, description="Exim-style period such as 1h")


class Policies(StrictModel):
    quota: Quota = Field(default_factory=Quota, description="mailbox quotas and warnings")
    message_size_limit: Size = Field(
        default=ByteSize(25_000_000),
        ge=65_536,
        description="largest message accepted, at least 64 KiB (less would refuse ordinary mail)",
    )
    delayed_expunge_days: int = Field(default=7, ge=1, le=365, description="days expunged mail stays recoverable")
    delayed_delete_days: int = Field(default=7, ge=1, le=365, description="days deleted folders stay recoverable")
    ports: Ports = Field(default_factory=Ports, description="the service/port table")
    spam: Spam = Field(default_factory=Spam, description="DNSBLs and SpamAssassin thresholds")
    outgoing_rate_limit: RateLimit = Field(
        default_factory=lambda: RateLimit(messages=500, period="1h"),
        description="messages and recipients per authenticated sender",
    )
    recipients_per_message: int = Field(
        default=100,
        ge=100,
        le=10_000,
        description="most recipients of one message from outside or from a user; at least 100 (RFC 5321 4.5.3.1.8)",
    )
    relay_host_rate_limit: MessageRate = Field(
        default_factory=lambda: MessageRate(messages=5000, period="1h"),
        description="messages per period of each host in the relay networks (hosts outside them are not held to it)",
    )
    failed_logins: LoginThrottle = Field(
        default_factory=LoginThrottle, description="failed SMTP logins per host before its AUTH is refused"
    )
    connections_per_client: int = Field(
        default=20,
        ge=2,
        le=1000,
        description="most simultaneous SMTP connections from one outside host (relay hosts are not limited)",
    )
    sessions_per_account: float = Field(
        default=0.5,
        gt=0,
        le=5,
        description="IMAP (or POP) sessions a store pair member serves at once at the peak, per account placed on "
        "its pair: each of its client listeners takes that many (Cyrus maxchild, at least 100). 0.5: one account "
        "in four online with two connections (a client's INBOX and IDLE, or webmail's persistent session); seed 003's "
        "29,000 active users make a million logins a day",
    )
    queue_interval: str = Field(
        default="5m",
        pattern=r"^[1-9][0-9]*[smh]$",
        description="how often the MTA retries deferred mail, at most 1h: mail held for a store that is down is "
        "retried only this often once it is back, and the Internet's retry rules start at every 15m",
    )
    capacity_headroom_percent: int = Field(
        default=10,
        ge=0,
        le=99,
        description="share (0-99%) of each store's and backup server's usable RAID capacity kept free beyond all quotas",
    )
    smtp_ttl: int = Field(
        default=60, ge=1, le=MAX_TTL, description="TTL of the round-robin smtp name, short so hosts can leave quickly"
    )
    dns_ttl: int = Field(default=3600, ge=1, le=MAX_TTL, description="TTL of every other record")

    @field_validator("queue_interval")
    @classmethod
    def _queue_runs_often_enough(cls, interval: str) -> str:
        seconds = int(interval[:-1]) * _SECONDS[interval[-1]]
        if seconds > MAX_QUEUE_INTERVAL_SECONDS:
            raise ValueError(f"{interval} is longer than 1h: deferred mail would wait that long between retries")
        return interval
