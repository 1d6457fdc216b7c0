"""No input, however malformed, makes the loader raise anything but EstateError."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes.errors import EstateError
from hermes.loader import load_estate, parse_estate
from tests.conftest import LAB, set_path

LAB_DATA = yaml.safe_load(LAB.read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["a-z", "10.251.0.0/24", "10.251.0.7", "raid10", "25MB", "store-1a", "cyrus-1", "mx"]),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12
)


def _paths(data: Any, prefix: str = "") -> list[str]:
    paths = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            paths += _paths(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            paths += _paths(value, f"{prefix}[{index}]")
    return paths


LAB_PATHS = _paths(LAB_DATA)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    try:
        parse_estate(text, "fuzz.yml")
    except EstateError as error:
        assert error.problems


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(LAB_PATHS), values), min_size=1, max_size=3))
def test_mutated_lab_estate(tmp_path: Path, edits: list[tuple[str, Any]]) -> None:
    data = copy.deepcopy(LAB_DATA)
    for path, value in edits:
        try:
            set_path(data, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this path
    estate = tmp_path / "estate.yml"
    estate.write_text(yaml.safe_dump(data))
    (tmp_path / "lab.accounts").write_text(LAB.with_name("lab.accounts").read_text())
    try:
        load_estate(estate)
    except EstateError as error:
        assert error.problems
        assert all(p.message for p in error.problems)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("&a [*a]", "must be a YAML mapping"),
        ("a: &a {b: *a}\n", "recursive node"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("? [1]\n: x\n", "a mapping key must be a scalar"),
        ("name: lab\n" * 2, "duplicate key 'name'"),
        ("\x00", "unacceptable character"),
        ("!!python/object:os.system {}", "could not determine a constructor"),
        ("[" * 3000, "nesting depth"),
    ],
    ids=["alias-cycle", "recursive-mapping", "duplicate-key", "complex-key", "duplicate-name", "nul", "python-tag", "deep"],
)
def test_yaml_alias_cycles_and_duplicates_are_refused(text: str, reason: str) -> None:
    with pytest.raises(EstateError) as raised:
        parse_estate(text, "x.yml")
    assert any(reason in p.message for p in raised.value.problems), [str(p) for p in raised.value.problems]


def test_the_unmutated_lab_estate_loads() -> None:
    # The control for the tests above: the loader refuses bad input, not all input.
    assert parse_estate(LAB.read_text(), "lab.yml").name == "lab"
    assert load_estate(LAB).estate.name == "lab"
