"""The estate model: Pydantic models of one estate file, strict at every level."""

from hermes.model.domains import Domains, ManagedDomain
from hermes.model.estate import Estate
from hermes.model.hardware import RaidLevel, Storage
from hermes.model.hosts import Host
from hermes.model.placement import Placement, letters_of
from hermes.model.policies import MailboxPort, MailboxTls, Policies, SmtpPort, TlsMode
from hermes.model.services import Services, StorePair
from hermes.model.site import Network, Role, Site

__all__ = [
    "Domains",
    "Estate",
    "Host",
    "MailboxPort",
    "MailboxTls",
    "ManagedDomain",
    "Network",
    "Placement",
    "Policies",
    "RaidLevel",
    "Role",
    "Services",
    "Site",
    "SmtpPort",
    "Storage",
    "StorePair",
    "TlsMode",
    "letters_of",
]
