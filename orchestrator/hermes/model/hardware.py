"""Hosts' storage hardware and the capacity it gives."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from hermes.model.base import Size, StrictModel


class RaidLevel(StrEnum):
    RAID0 = "raid0"
    RAID1 = "raid1"
    RAID5 = "raid5"
    RAID6 = "raid6"
    RAID10 = "raid10"


# Fewest active disks each level needs, and how many disks' worth of capacity
# it gives from n active disks.
_MIN_DISKS = {RaidLevel.RAID0: 1, RaidLevel.RAID1: 2, RaidLevel.RAID5: 3, RaidLevel.RAID6: 4, RaidLevel.RAID10: 4}


def _data_disks(level: RaidLevel, active: int) -> int:
    match level:
        case RaidLevel.RAID0:
            return active
        case RaidLevel.RAID1:
            return 1
        case RaidLevel.RAID5:
            return active - 1
        case RaidLevel.RAID6:
            return active - 2
        case RaidLevel.RAID10:
            return active // 2


class Storage(StrictModel):
    """The RAID data volume that holds a host's mail (or backups)."""

    disks: int = Field(ge=1, description="number of physical disks in the array, hot spares included")
    disk_size: Size = Field(description="raw size of one disk")
    raid: RaidLevel = Field(description="RAID level of the array")
    hot_spares: int = Field(default=0, ge=0, description="disks kept as hot spares, not holding data")
    mount: str = Field(
        default="/srv/mail",
        pattern=r"^/[A-Za-z0-9._/-]*$",
        description="where the data volume is mounted; store partitions live below it",
    )

    @model_validator(mode="after")
    def _enough_disks(self) -> Storage:
        active = self.disks - self.hot_spares
        need = _MIN_DISKS[self.raid]
        if active < need:
            raise ValueError(f"{self.raid} needs at least {need} active disks, has {active}")
        if self.raid is RaidLevel.RAID10 and active % 2:
            raise ValueError(f"raid10 needs an even number of active disks, has {active}")
        return self

    @property
    def raw_bytes(self) -> int:
        return self.disks * int(self.disk_size)

    @property
    def usable_bytes(self) -> int:
        """Capacity the array offers after RAID redundancy and hot spares."""
        return _data_disks(self.raid, self.disks - self.hot_spares) * int(self.disk_size)
