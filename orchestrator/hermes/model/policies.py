"""Service policies, with the defaults the seeds give for Hermes."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ByteSize, Field, model_validator

from hermes.model.base import DomainName, Percent, Size, StrictModel


class Quota(StrictModel):
    default: Size = Field(default=ByteSize(250_000_000), description="quota of an account without an override")
    maximum: Size = Field(default=ByteSize(1_000_000_000), description="largest quota any account may have")
    warning_percent: Percent = Field(default=90, description="usage at which the user is warned by mail")

    @model_validator(mode="after")
    def _default_within_maximum(self) -> Quota:
        if self.default > self.maximum:
            raise ValueError(f"default quota {self.default.human_readable()} exceeds maximum {self.maximum.human_readable()}")
        return self


class TlsMode(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"


class Port(StrictModel):
    enabled: bool = Field(default=True, description="whether the service listens at all")
    port: int = Field(ge=1, le=65535, description="TCP port")
    tls: TlsMode = Field(description="none, STARTTLS on the plain port, or TLS from connect")
    auth: bool = Field(default=False, description="clients must authenticate (submission)")


def _port(port: int, tls: TlsMode, *, auth: bool = False, enabled: bool = True) -> Port:
    return Port(port=port, tls=tls, auth=auth, enabled=enabled)


class Ports(StrictModel):
    """The TRIUMF service table: what listens where, and how TLS is offered."""

    smtp: Port = Field(default_factory=lambda: _port(25, TlsMode.STARTTLS))
    smtps: Port = Field(default_factory=lambda: _port(465, TlsMode.IMPLICIT, auth=True))
    submission: Port = Field(default_factory=lambda: _port(587, TlsMode.STARTTLS, auth=True))
    imap: Port = Field(default_factory=lambda: _port(143, TlsMode.STARTTLS))
    imaps: Port = Field(default_factory=lambda: _port(993, TlsMode.IMPLICIT))
    pop3: Port = Field(default_factory=lambda: _port(110, TlsMode.STARTTLS))
    pop3s: Port = Field(default_factory=lambda: _port(995, TlsMode.IMPLICIT))
    pop2: Port = Field(default_factory=lambda: _port(109, TlsMode.NONE, enabled=False))

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        used: dict[int, str] = {}
        for name, spec in self:
            if spec.enabled and spec.port in used:
                raise ValueError(f"{name} and {used[spec.port]} both use port {spec.port}")
            used[spec.port] = name
        if self.smtp.auth:
            raise ValueError("smtp (port 25) receives mail from the Internet and cannot require auth")
        return self


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
    message_size_limit: Size = Field(default=ByteSize(25_000_000), description="largest message accepted")
    delayed_expunge_days: int = Field(default=7, ge=1, le=365, description="days expunged mail stays recoverable")
    delayed_delete_days: int = Field(default=7, ge=1, le=365, description="days deleted folders stay recoverable")
    ports: Ports = Field(default_factory=Ports, description="the service/port table")
    spam: Spam = Field(default_factory=Spam, description="DNSBLs and SpamAssassin thresholds")
    outgoing_rate_limit: RateLimit = Field(
        default_factory=lambda: RateLimit(messages=500, period="1h"), description="per authenticated sender"
    )
    queue_interval: str = Field(
        default="5m", pattern=r"^[1-9][0-9]*[smh]$", description="how often the MTA retries deferred mail"
    )
    capacity_headroom_percent: Percent = Field(
        default=10, description="share of each store's usable RAID capacity kept free beyond all quotas"
    )
    smtp_ttl: int = Field(default=60, ge=1, description="TTL of the round-robin smtp name, short so hosts can leave quickly")
    dns_ttl: int = Field(default=3600, ge=1, description="TTL of every other record")
