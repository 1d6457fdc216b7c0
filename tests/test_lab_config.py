"""Every molecule scenario is an estate, started by the lab's own code (hermesctl lab up).

Platforms carry no container options: .config/molecule/config.yml's create runs `lab up`, so a
scenario's hosts start exactly as the lab's do. Estates and their networks must be distinct,
because `lab down` removes whatever carries an estate's name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hermes.loader import load_estate
from hermes.paths import PROJECT_ROOT

SCENARIOS = sorted(p.parent for p in (PROJECT_ROOT / "molecule").glob("*/molecule.yml"))
ESTATES = [*sorted((PROJECT_ROOT / "inventory" / "estates").glob("*.yml")), PROJECT_ROOT / "tests" / "data" / "labtest.yml"]


def _estate(scenario: Path) -> Path:
    return scenario / "estate" / f"{scenario.name}.yml"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_scenario_platforms_are_hosts_of_its_estate(scenario: Path) -> None:
    loaded = load_estate(_estate(scenario))
    assert loaded.estate.name == scenario.name
    platforms = yaml.safe_load((scenario / "molecule.yml").read_text())["platforms"]
    assert platforms and all(set(p) == {"name"} for p in platforms), "platforms name hosts; lab up starts them"
    assert {p["name"] for p in platforms} <= {h.name for h in loaded.estate.hosts}


def test_shared_config_creates_and_destroys_with_the_lab() -> None:
    config = yaml.safe_load((PROJECT_ROOT / ".config" / "molecule" / "config.yml").read_text())
    assert "platforms" not in config
    assert config["ansible"]["playbooks"] == {"create": "../shared/create.yml", "destroy": "../shared/destroy.yml"}
    for playbook in ("create", "destroy"):
        text = (PROJECT_ROOT / "molecule" / "shared" / f"{playbook}.yml").read_text()
        assert f"lab, {'up' if playbook == 'create' else 'down'}, --estate" in text
    for scenario in SCENARIOS:
        assert not (scenario / "create.yml").exists() and not (scenario / "destroy.yml").exists(), scenario.name


def test_estates_and_networks_are_distinct() -> None:
    # The estate scenario (molecule/lab) is the lab estate itself, linked, not another estate.
    assert _estate(PROJECT_ROOT / "molecule" / "lab").resolve() == PROJECT_ROOT / "inventory" / "estates" / "lab.yml"
    scenarios = [_estate(s) for s in SCENARIOS if _estate(s).resolve() not in ESTATES]
    loaded = [load_estate(path) for path in [*ESTATES, *scenarios]]
    names = [e.estate.name for e in loaded]
    assert len(names) == len(set(names)), names
    subnets = [n.subnet for e in loaded if e.estate.name != "hermes-2007" for n in e.estate.networks]
    overlapping = [(a, b) for i, a in enumerate(subnets) for b in subnets[i + 1 :] if a in b or b in a]
    assert overlapping == []
