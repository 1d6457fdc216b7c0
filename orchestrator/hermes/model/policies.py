"""Service policies, with the defaults the seeds give for Hermes."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ByteSize, Field, field_validator, model_validator

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


class Spam(StrictModel):
    dnsbls: list[DomainName] = Field(
        default_factory=lambda: ["zen.spamhaus.org"], description="DNS blocklists consulted at connection time"
    )
    spamassassin_threshold: float = Field(default=5.0, gt=0, le=50, description="score at which mail is tagged as spam")
    reject_threshold: float | None = Field(
        default=None, gt=0, le=100, description="score at which mail is refused; none means tag only"
    )

    @model_validator(mode="after")
    def _reject_above_tag(self) -> Spam:
        if self.reject_threshold is not None and self.reject_threshold <= self.spamassassin_threshold:
            raise ValueError("reject_threshold must be above spamassassin_threshold")
        return self


class RateLimit(StrictModel):
    messages: int = Field(ge=1, description="messages an authenticated user may send per period")
    period: str = Field(pattern=r"^[1-9][0-9]*[smhd]$", description="Exim-style period such as 1h")


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
        default_factory=lambda: RateLimit(messages=500, period="1h"), description="messages per authenticated sender"
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
