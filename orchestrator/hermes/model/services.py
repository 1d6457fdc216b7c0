"""The estate's services and the hosts that provide them."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from hermes.model.base import DomainName, Name, StrictModel
from hermes.model.domains import Target
from hermes.model.site import ClientNetwork, IPAddress


class HostGroup(StrictModel):
    """A service run on one or more interchangeable hosts."""

    hosts: list[Name] = Field(min_length=1, description="names of the hosts providing the service")


class RelayNetwork(ClientNetwork):
    """A client network whose hosts (departmental servers) send through the hubs without authenticating."""

    covers_estate_hosts: bool = Field(
        default=False,
        description="required (true) when the subnet overlaps one of the estate's networks, and only then: every "
        "estate host addressed there (stores, webmail) would relay without authenticating, skipping the checks "
        "on outside mail",
    )


class MailHub(HostGroup):
    """ppswitch: the MX and relay pool behind round-robin DNS."""

    relay_networks: list[RelayNetwork] = Field(
        default_factory=list,
        description="client networks whose hosts may relay without authenticating (departmental servers); "
        "the lists hosts relay without being listed, webmail authenticates",
    )


class Partition(StrictModel):
    name: Name
    path: str = Field(
        pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$",
        description="directory below the host's data volume mount",
    )


class StorePair(StrictModel):
    """A Cyrus master and its hot-spare replica, plus the backup server both feed."""

    name: Name
    master: Name = Field(description="the host that is master by design")
    replica: Name = Field(description="the hot spare continuously updated from the master")
    live: Name = Field(description="the member serving users now: the master, or the replica after a switchover")
    backup: Name = Field(description="the backup server the live member also replicates to")
    fenced: Name | None = Field(
        default=None,
        description="the member a failover fenced off: no deploy touches it and it runs no Cyrus until "
        "`hermesctl store reattach` makes it the spare again (written by the failover, not by hand)",
    )
    partitions: list[Partition] = Field(default_factory=lambda: [Partition(name="default", path="spool")], min_length=1)

    @model_validator(mode="after")
    def _members(self) -> StorePair:
        if self.master == self.replica:
            raise ValueError(f"master and replica are the same host {self.master!r}")
        if self.live not in (self.master, self.replica):
            raise ValueError(f"live host {self.live!r} is neither the master nor the replica")
        if self.fenced is not None and self.fenced != self.spare:
            raise ValueError(
                f"fenced host {self.fenced!r} is not the pair's spare (only the member that is not live can be fenced)"
            )
        names = [p.name for p in self.partitions]
        if len(set(names)) != len(names):
            raise ValueError("partition names repeat")
        return self

    @property
    def members(self) -> tuple[str, str]:
        return (self.master, self.replica)

    @property
    def spare(self) -> str:
        return self.replica if self.live == self.master else self.master


# Mailman's own addresses of a list: <list><suffix>@ the lists' domain.
LIST_SUFFIXES = ("-bounces", "-confirm", "-join", "-leave", "-owner", "-request", "-subscribe", "-unsubscribe")


class MailingList(StrictModel):
    """A Mailman list, its owners and members: each deploy makes Mailman's rosters these.

    Addresses added by email or by an owner are removed at the next deploy (docs/lists.md)."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="the list's local part in the lists' domain (lower case)"
    )
    owners: list[Target] = Field(
        min_length=1,
        description="usernames or full addresses that run the list (<list>-owner@ reaches them); at least one",
    )
    members: list[Target] = Field(default_factory=list, description="usernames or full addresses a post to the list is sent to")

    @field_validator("name")
    @classmethod
    def _not_a_mailman_address(cls, name: str) -> str:
        for suffix in LIST_SUFFIXES:
            if name.endswith(suffix):
                raise ValueError(f"a list name may not end in {suffix!r}: that is Mailman's address of another list")
        return name


class Lists(HostGroup):
    domain: DomainName = Field(description="the lists' mail domain, e.g. lists.cam.ac.uk")
    lists: list[MailingList] = Field(
        default_factory=list,
        description="the lists; the hubs refuse, at RCPT, every other address of the lists' domain",
    )


class Dns(HostGroup):
    """BIND on the DNS hosts, authoritative for the estate's zones and its hosts' resolver.

    The zones are answered to anyone; recursion is for the estate's hosts' addresses only."""

    forwarders: list[IPAddress] = Field(
        default_factory=list,
        max_length=8,
        description="upstream resolvers every outside name is forwarded to (forward only); empty: resolve from the root",
    )
    dnssec_validation: bool = Field(
        default=True,
        description="validate outside answers' DNSSEC signatures; off only behind forwarders that answer unsigned",
    )


class Directory(HostGroup):
    """The account directory (OpenLDAP): the one source every login is checked against.

    The first host is the provider, where entries are written; any others are read-only
    replicas of it (syncrepl), listed after it in the order clients should try them."""

    @property
    def provider(self) -> str:
        return self.hosts[0]

    @property
    def replicas(self) -> list[str]:
        return self.hosts[1:]


class Services(StrictModel):
    mx: MailHub = Field(description="ppswitch: MX, relay and submission hosts")
    store_pairs: list[StorePair] = Field(min_length=1, description="Cyrus master/replica pairs")
    backup: HostGroup = Field(description="backup servers the live stores replicate to")
    proxy: HostGroup = Field(description="IMAP/POP proxies that hide which store holds a user")
    webmail: HostGroup = Field(description="webmail hosts")
    lists: Lists = Field(description="Mailman hosts and the lists' domain")
    dns: Dns = Field(description="DNS servers: authoritative for the estate's zones, resolvers for its hosts")
    directory: Directory = Field(description="the account directory: its provider first, then its replicas")
