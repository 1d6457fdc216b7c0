"""The committed Hermes-2007 estate is what the generator makes, and matches the seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hermes.errors import EstateError
from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from hermes.synthetic import hermes_2007, usernames

ESTATES = PROJECT_ROOT / "inventory" / "estates"


def test_committed_estate_is_current() -> None:
    estate, files = hermes_2007(1)
    assert yaml.safe_load((ESTATES / "hermes-2007.yml").read_text()) == estate
    assert set(files) == {"hermes-2007.accounts", "hermes-2007.cam-forwards"}
    for name, text in files.items():
        assert (ESTATES / name).read_text() == text, name


def test_hermes_2007_has_the_seeds_numbers() -> None:
    loaded = load_estate(ESTATES / "hermes-2007.yml")
    estate = loaded.estate
    assert len(loaded.accounts) == 37_600
    assert len(estate.hosts) == 30
    assert len(estate.domains.managed) == 198
    # Seed 003's 63 departmental email servers, each a routed domain (seed 001: eng, cup, and
    # admin and mole, whose @cam addresses do not reach Hermes), none of them a managed domain.
    routed = {d.name for d in estate.domains.routed}
    assert len(routed) == 63 and {"eng.cam.ac.uk", "cup.cam.ac.uk", "admin.cam.ac.uk", "mole.cam.ac.uk"} <= routed
    assert not routed & {d.name for d in estate.domains.managed}
    # Seed 001: confide is a shared account, with no @cam address; fanf2 has one (fanf2@cam).
    assert loaded.shared_accounts == {"confide"}
    [cam] = estate.domains.forwarding
    assert cam.name == "cam.ac.uk" and "confide" not in loaded.forwards["cam.ac.uk"]
    assert {str(h.storage.raid) for h in estate.hosts if h.storage and "store" in h.roles} == {"raid10"}
    assert estate.services.backup.hosts
    assert int(estate.policies.message_size_limit) == 25_000_000
    ucs = next(d for d in estate.domains.managed if d.name == "ucs.cam.ac.uk")
    assert ucs.aliases["Tony.Finch"] == ["fanf2"]


def test_the_backup_server_holds_every_pair(tmp_path: Path) -> None:
    # Seed 003's "8TB backup server" (24 disks) could not hold the 9.68 TB of quota the eight
    # pairs commit; the shelf of disks it grew (36) can.
    estate, files = hermes_2007(1)
    (backup,) = (h for h in estate["hosts"] if "backup" in h["roles"])
    assert backup["storage"]["disks"] == 36
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "hermes-2007.yml"
    path.write_text(yaml.safe_dump(estate))
    assert load_estate(path).estate.services.backup.hosts == [backup["name"]]
    backup["storage"]["disks"] = 24
    path.write_text(yaml.safe_dump(estate))
    with pytest.raises(EstateError) as caught:
        load_estate(path)
    assert [str(p) for p in caught.value.problems] == [
        "services.backup.hosts[0]: quotas of the 37600 users of the pairs it backs up total 9682.0 GB, more than "
        "the 7200.0 GB usable on 'backup-1' after 10% headroom (policies.capacity_headroom_percent)"
    ]


def test_usernames_are_deterministic_and_distinct() -> None:
    assert usernames(1000) == usernames(1000)
    assert len(set(usernames(5000))) == 5000
