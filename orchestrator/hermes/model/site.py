"""Where hosts physically are: sites, racks and the networks they sit on."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import netaddr
from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator

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
