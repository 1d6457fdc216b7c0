"""The root of the estate file."""

from __future__ import annotations

from pydantic import Field

from hermes.model.base import Name, StrictModel
from hermes.model.domains import Domains
from hermes.model.hosts import Host
from hermes.model.placement import Placement
from hermes.model.policies import Policies
from hermes.model.services import Services
from hermes.model.site import ManagementNetwork, Network, Site


class Estate(StrictModel):
    """One mail estate: everything hermesctl renders and deploys."""

    name: Name = Field(description="the estate's name; the rendered inventory goes to inventory/rendered/<name>/")
    description: str = Field(default="", max_length=500, description="free text for people")
    domains: Domains = Field(description="host, account and managed mail domains")
    sites: list[Site] = Field(min_length=1, description="machine rooms with their racks and power feeds")
    networks: list[Network] = Field(min_length=1, description="subnets hosts are addressed from")
    management_networks: list[ManagementNetwork] = Field(
        min_length=1,
        description="where operators administer the estate from (deploys, store operations): the hosts' firewalls "
        "admit SSH, and IMAP to the stores and backup servers, from these networks and from no other",
    )
    hosts: list[Host] = Field(min_length=1, description="every machine of the estate")
    services: Services = Field(description="which hosts provide which service")
    placement: Placement = Field(description="which store pair holds which user")
    accounts: str = Field(
        pattern=r"^[A-Za-z0-9._/-]+$",
        description="the accounts file, relative to the estate file: one username per line, "
        "optionally followed by a quota override; never passwords",
    )
    policies: Policies = Field(default_factory=Policies, description="limits and behaviour, defaulting to the seeds' values")

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)
