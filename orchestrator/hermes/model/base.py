"""Building blocks shared by every part of the estate model."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ByteSize, ConfigDict, Field, StringConstraints

# Host, site, pair and network names become inventory names, DNS labels and
# container names, so they are restricted to lower-case DNS labels.
Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$"),
    Field(description="a lower-case DNS label: letters, digits and '-', starting with a letter"),
]

# Usernames (CRSIDs such as fanf2) become Cyrus mailbox names and Exim local parts.
Username = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$"),
    Field(description="a lower-case username: letters, digits and '-', starting with a letter"),
]

DomainName = Annotated[
    str,
    StringConstraints(max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"),
    Field(description="a fully qualified lower-case domain name"),
]

# Sizes are written as in the seeds ("250MB", "1GB", "25MiB"): MB is 10^6 bytes, MiB 2^20.
Size = Annotated[ByteSize, Field(description="a size such as 250MB (10^6 bytes) or 25MiB (2^20 bytes)")]


class StrictModel(BaseModel):
    """Every model forbids unknown fields and is immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
