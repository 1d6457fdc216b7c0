"""Role facts, case by case: tests/data/render/<case>/estate.yml in, expected/ out (see its README)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hermes.loader import load_estate
from hermes.render import render_inventory

CASES = sorted(p for p in (Path(__file__).parent / "data" / "render").iterdir() if p.is_dir())


def mismatches(expected: Any, actual: Any, where: str) -> list[str]:
    """Where ``actual`` differs from ``expected``; a mapping need only have the expected keys."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{where}.{key}: missing")
            else:
                found.extend(mismatches(value, actual[key], f"{where}.{key}"))
        return found
    return [] if expected == actual else [f"{where}: expected {expected!r}, rendered {actual!r}"]


def test_mismatches_compares_mappings_by_subset_and_the_rest_exactly() -> None:
    assert mismatches({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3}, "f") == []
    assert mismatches({"a": {"b": 1}}, {"a": {"b": 2}}, "f") == ["f.a.b: expected 1, rendered 2"]
    assert mismatches({"a": [1]}, {"a": [1, 2]}, "f") == ["f.a: expected [1], rendered [1, 2]"]
    assert mismatches({"x": 1}, {}, "f") == ["f.x: missing"]


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_case(case: Path) -> None:
    files = render_inventory(load_estate(case / "estate.yml"), "estate.yml")
    expected_files = sorted(p for p in (case / "expected").rglob("*.yml"))
    assert expected_files, f"{case.name} expects nothing"
    problems = []
    for path in expected_files:
        name = path.relative_to(case / "expected").as_posix()
        if name not in files:
            problems.append(f"{name}: not rendered")
            continue
        problems.extend(mismatches(yaml.safe_load(path.read_text()), yaml.safe_load(files[name]), name))
    assert not problems, "\n".join(problems)
