"""Shared fixtures: the lab estate as data, and a way to write variants of it."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hermes.paths import PROJECT_ROOT

LAB = PROJECT_ROOT / "inventory" / "estates" / "lab.yml"
LAB_ACCOUNTS = LAB.with_name("lab.accounts").read_text()

WriteEstate = Callable[..., Path]


def set_path(data: Any, path: str, value: Any) -> None:
    """Set ``data`` at a dotted path such as ``services.store_pairs[0].master``."""
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
    for part in parts[:-1]:
        data = data[part]
    data[parts[-1]] = value


@pytest.fixture
def lab_data() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(LAB.read_text()))


@pytest.fixture
def write_estate(tmp_path: Path, lab_data: dict[str, Any]) -> WriteEstate:
    """Write an estate file (the lab, with edits) and its accounts; return the estate path."""

    def write(
        edits: dict[str, Any] | None = None,
        *,
        data: dict[str, Any] | None = None,
        accounts: str = LAB_ACCOUNTS,
        name: str = "estate.yml",
    ) -> Path:
        estate = copy.deepcopy(data if data is not None else lab_data)
        for path, value in (edits or {}).items():
            set_path(estate, path, value)
        (tmp_path / "lab.accounts").write_text(accounts)
        target = tmp_path / name
        target.write_text(yaml.safe_dump(estate, sort_keys=False))
        return target

    return write
