"""Hosts: one machine each, with its place, its hardware and its address."""

from __future__ import annotations

from pydantic import Field

from hermes.model.base import Name, StrictModel
from hermes.model.hardware import Storage
from hermes.model.site import IPAddress, Role


class Host(StrictModel):
    name: Name
    site: Name = Field(description="the site the host stands in")
    rack: Name = Field(description="the rack, at that site")
    network: Name = Field(description="the network its address comes from")
    address: IPAddress | None = Field(
        default=None,
        description="pinned address; when absent one is allocated stably from the network",
    )
    roles: list[Role] = Field(min_length=1, description="what the host is for")
    storage: Storage | None = Field(default=None, description="the RAID data volume; required for store and backup hosts")
