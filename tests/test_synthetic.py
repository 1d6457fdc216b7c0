"""The committed Hermes-2007 estate is what the generator makes, and matches the seeds."""

from __future__ import annotations

import yaml

from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT
from hermes.synthetic import hermes_2007, usernames

ESTATES = PROJECT_ROOT / "inventory" / "estates"


def test_committed_estate_is_current() -> None:
    estate, accounts = hermes_2007(1)
    assert yaml.safe_load((ESTATES / "hermes-2007.yml").read_text()) == estate
    assert (ESTATES / "hermes-2007.accounts").read_text() == accounts


def test_hermes_2007_has_the_seeds_numbers() -> None:
    loaded = load_estate(ESTATES / "hermes-2007.yml")
    estate = loaded.estate
    assert len(loaded.accounts) == 37_600
    assert len(estate.hosts) == 30
    assert len(estate.domains.managed) == 198
    assert {str(h.storage.raid) for h in estate.hosts if h.storage and "store" in h.roles} == {"raid10"}
    assert estate.services.backup.hosts
    assert int(estate.policies.message_size_limit) == 25_000_000
    ucs = next(d for d in estate.domains.managed if d.name == "ucs.cam.ac.uk")
    assert ucs.aliases["Tony.Finch"] == ["fanf2"]


def test_usernames_are_deterministic_and_distinct() -> None:
    assert usernames(1000) == usernames(1000)
    assert len(set(usernames(5000))) == 5000
