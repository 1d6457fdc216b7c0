"""Where hosts physically are: sites, racks and the networks they sit on."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import netaddr
from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema, field_validator, model_validator

from hermes.model.base import Name, StrictModel


def _ip_network(value: object) -> netaddr.IPNetwork:
    if isinstance(value, netaddr.IPNetwork):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a subnet in CIDR form, such as 10.89.0.0/24")
    try:
        network = netaddr.IPNetwork(value, flags=netaddr.NOHOST)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValueError(f"{value!r} is not a subnet in CIDR form, such as 10.89.0.0/24") from None
    if str(network.cidr) != str(netaddr.IPNetwork(value)):
        raise ValueError(f"{value!r} has host bits set; the subnet is {network.cidr}")
    return network.cidr


def _ip_address(value: object) -> netaddr.IPAddress:
    if isinstance(value, netaddr.IPAddress):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an IP address written as a string")
    try:
        return netaddr.IPAddress(value, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise ValueError(f"{value!r} is not an IP address") from None


Subnet = Annotated[
    netaddr.IPNetwork,
    PlainValidator(_ip_network),
    PlainSerializer(str),
    WithJsonSchema({"type": "string", "description": "a subnet in CIDR form, e.g. 10.89.0.0/24"}),
]
IPAddress = Annotated[
    netaddr.IPAddress,
    PlainValidator(_ip_address),
    PlainSerializer(str),
    WithJsonSchema({"type": "string", "description": "an IPv4 or IPv6 address"}),
]


class Rack(StrictModel):
    name: Name
    power_feed: Name = Field(description="the power feed (or UPS) the rack draws from")


class Site(StrictModel):
    name: Name
    racks: list[Rack] = Field(min_length=1, description="racks at the site, each on one power feed")

    @model_validator(mode="after")
    def _unique_racks(self) -> Site:
        names = [rack.name for rack in self.racks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rack names repeat: {', '.join(duplicates)}")
        return self


class Network(StrictModel):
    name: Name
    subnet: Subnet
    gateway: IPAddress | None = Field(default=None, description="the router; defaults to the first usable address of the subnet")

    @model_validator(mode="after")
    def _gateway_inside(self) -> Network:
        if self.subnet.size < 4:
            raise ValueError(f"subnet {self.subnet} is too small to hold hosts")
        if self.gateway is not None and self.gateway not in self.subnet:
            raise ValueError(f"gateway {self.gateway} is outside subnet {self.subnet}")
        return self

    @property
    def router(self) -> netaddr.IPAddress:
        return self.gateway if self.gateway is not None else netaddr.IPAddress(self.subnet.first + 1)


# The widest client network allowed, by IP version: an IPv4 /16 is a whole university's allocation
# (Cambridge's 131.111.0.0/16), an IPv6 /48 one site's (RFC 6177). Anything wider holds other
# organisations' hosts: 0.0.0.0/0 as a relay network makes the hubs an open relay, as a
# management network opens SSH to the Internet.
CLIENT_PREFIX_FLOOR = {4: 16, 6: 48}


class ClientNetwork(StrictModel):
    """A network of clients outside the estate's own hosts that the estate trusts for something."""

    name: Name = Field(description="what the network is; unique among its kind")
    subnet: Subnet = Field(
        description="the network, at most a /16 (IPv4) or a /48 (IPv6): a /16 is a whole university's IPv4 "
        "allocation (Cambridge's 131.111.0.0/16) and a /48 one site's IPv6 (RFC 6177); anything wider holds other "
        "organisations' hosts. IPv4 is written as IPv4, never as ::ffff:a.b.c.d"
    )

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: object) -> object:
        # Estates written before client networks had names listed bare subnets.
        if isinstance(data, str):
            raise ValueError(f"{data!r} needs a name: write {{name: <what it is>, subnet: {data}}}")
        return data

    @field_validator("subnet")
    @classmethod
    def _narrow_enough(cls, subnet: netaddr.IPNetwork) -> netaddr.IPNetwork:
        if subnet.version == 6 and subnet.ip.is_ipv4_mapped():
            raise ValueError(f"{subnet} is IPv4 written as IPv6: write the IPv4 network")
        floor = CLIENT_PREFIX_FLOOR[subnet.version]
        if subnet.prefixlen < floor:
            raise ValueError(f"{subnet} is wider than a /{floor}: a client network, not the Internet")
        return subnet


class ManagementNetwork(ClientNetwork):
    """Where operators work from: the only source of SSH and of administrative IMAP to stores."""


class Role(StrEnum):
    """What a host is for; services may only name hosts that carry the matching role."""

    MX = "mx"
    STORE = "store"
    BACKUP = "backup"
    PROXY = "proxy"
    WEBMAIL = "webmail"
    LISTS = "lists"
    DNS = "dns"
    DIRECTORY = "directory"
