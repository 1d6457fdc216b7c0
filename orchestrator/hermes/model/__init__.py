"""The estate model: Pydantic models of one estate file, strict at every level."""

from hermes.model.domains import Domains, ManagedDomain
from hermes.model.estate import Estate
from hermes.model.hardware import RaidLevel, Storage
from hermes.model.hosts import Host
from hermes.model.placement import Placement, letters_of
from hermes.model.policies import Policies, Port, TlsMode
from hermes.model.services import Services, StorePair
from hermes.model.site import Network, Role, Site

__all__ = [
    "Domains",
    "Estate",
    "Host",
    "ManagedDomain",
    "Network",
    "Placement",
    "Policies",
    "Port",
    "RaidLevel",
    "Role",
    "Services",
    "Site",
    "Storage",
    "StorePair",
    "TlsMode",
    "letters_of",
]
