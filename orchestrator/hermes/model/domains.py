"""Mail domains: the accounts' domain and the managed mail domains with their aliases."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from hermes.model.base import DomainName, StrictModel

LocalPart = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
# A target is a username on the estate (fanf2), or a full address (cs-unix-support@lists...).
Target = Annotated[
    str,
    StringConstraints(pattern=r"^([a-z][a-z0-9-]{0,31}|[A-Za-z0-9][A-Za-z0-9._+-]{0,63}@[a-z0-9.-]+)$"),
]


def qualified(target: str, mail_domain: str) -> str:
    """A target as a full address: a username becomes <username>@ the accounts' domain."""
    return target if "@" in target else f"{target}@{mail_domain}"


def _once(names: list[str], what: str) -> list[str]:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} listed twice: {', '.join(repeated)}")
    return names


class DepartmentDomain(StrictModel):
    """A department's or college's domain, with the other names it goes by."""

    name: DomainName
    long_forms: list[DomainName] = Field(
        default_factory=list,
        description="the domain's other names, e.g. queens.cam.ac.uk for quns.cam.ac.uk (seed 001's long-form domains): "
        "mail to any of them is mail to the domain",
    )

    @field_validator("long_forms")
    @classmethod
    def _long_forms_once(cls, long_forms: list[str]) -> list[str]:
        return _once(long_forms, "long forms")

    @property
    def names(self) -> list[str]:
        """The domain's name and its long forms: the hubs treat each alike."""
        return [self.name, *self.long_forms]


class ManagedDomain(DepartmentDomain):
    """A department's domain run by the hub, e.g. ucs: Tony.Finch@ucs -> fanf2@hermes."""

    aliases: dict[LocalPart, list[Target]] = Field(
        default_factory=dict, description="local part -> usernames or full addresses it delivers to"
    )

    @field_validator("aliases")
    @classmethod
    def _targets_present(cls, aliases: dict[str, list[str]]) -> dict[str, list[str]]:
        lowered = [local.lower() for local in aliases]
        duplicates = sorted({n for n in lowered if lowered.count(n) > 1})
        if duplicates:
            raise ValueError(f"aliases differ only in case: {', '.join(duplicates)}")
        empty = sorted(local for local, targets in aliases.items() if not targets)
        if empty:
            raise ValueError(f"aliases without targets: {', '.join(empty)}")
        return aliases


class RoutedDomain(DepartmentDomain):
    """A department's or college's domain with its own mail server (eng, cup, ...): the hubs are
    its MX, primary or backup as its zone says (seed 001: "MX service for incoming email
    (primary & backup)"). They take its mail for any recipient its server takes, scan it, and
    relay it there, keeping it queued while the server is down."""

    servers: list[DomainName] = Field(
        min_length=1,
        max_length=8,
        description="the domain's own mail servers (host names), in the order the hubs try them; the hubs ask "
        "the first that answers whether a recipient exists before they accept mail for it; they take the "
        "domain's long forms too",
    )

    @field_validator("servers")
    @classmethod
    def _servers_once(cls, servers: list[str]) -> list[str]:
        return _once(servers, "servers")


class ForwardingDomain(StrictModel):
    """The University's own domain (seed 001's @cam): each person's address forwards where they
    chose. The table lists the choices; a personal account it does not list forwards to the
    account itself; a shared account has no address here ("Shared accounts on Hermes do not
    have an equivalent @cam address"), nor has any other name the table does not list."""

    name: DomainName
    table: str = Field(
        pattern=r"^[A-Za-z0-9._/-]+$",
        description="the forwarding table, relative to the estate file: one 'local-part: target' per line, the "
        "target a username of the accounts' domain or a full address (the user administration's export of "
        "people's choices; a personal account not listed forwards to itself)",
    )


class RoleAddresses(StrictModel):
    """Who reads the role addresses every mail domain of the estate answers (RFC 5321 §4.5.1,
    RFC 2142): <role>@ the accounts' domain, each managed domain (unless it aliases that local
    part itself) and the lists' domain. Roles left out go where postmaster goes."""

    postmaster: list[Target] = Field(min_length=1, description="usernames or addresses; required by RFC 5321")
    abuse: list[Target] = Field(min_length=1, description="usernames or addresses; complaints about the estate's mail")
    hostmaster: list[Target] | None = Field(default=None, description="DNS (the zones' SOA names it); default: postmaster's")
    webmaster: list[Target] | None = Field(default=None, description="default: postmaster's")
    noc: list[Target] | None = Field(default=None, description="default: postmaster's")
    security: list[Target] | None = Field(default=None, description="default: postmaster's")

    def resolved(self) -> dict[str, list[str]]:
        """Every role -> its targets, defaults filled in."""
        return {role: list(getattr(self, role) or self.postmaster) for role in type(self).model_fields}


class Domains(StrictModel):
    hosts: DomainName = Field(description="domain of the hosts' names, e.g. csi.cam.ac.uk")
    mail: DomainName = Field(description="domain of the accounts' addresses, e.g. hermes.cam.ac.uk")
    managed: list[ManagedDomain] = Field(
        default_factory=list, description="departments' domains run by the hubs: each address an alias (Managed Mail Domains)"
    )
    routed: list[RoutedDomain] = Field(
        default_factory=list,
        description="departments' and colleges' domains with their own mail servers, which the hubs relay their mail to",
    )
    forwarding: list[ForwardingDomain] = Field(
        default_factory=list, description="domains whose every address forwards where its person chose (@cam)"
    )
    role_addresses: RoleAddresses = Field(description="postmaster, abuse and the other RFC 2142 addresses of every domain")
