"""The lab scenario's fixtures: the lab's users and their passwords, and its estate file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lablib import ESTATE, ESTATE_FILE, LOADED

from hermes.check import probe_users
from hermes.lab.vault import read_lab_vault
from hermes.paths import LAB_STATE, PROJECT_ROOT


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    vault = read_lab_vault(LAB_STATE / "lab" / "vault.yml", LAB_STATE / "lab" / "vault-password")
    return dict(vault["vault_hermes_user_passwords"])


@pytest.fixture(scope="module")
def users(passwords: dict[str, str]) -> dict[str, str]:
    return dict(probe_users(LOADED, passwords).by_pair)


@pytest.fixture(scope="module")
def estate_file() -> Iterator[Path]:
    """The lab's estate file, which the switchover rewrites with its committed render; both are
    put back byte for byte afterwards if the test left them otherwise."""
    rendered = PROJECT_ROOT / "inventory" / "rendered" / ESTATE.name
    saved = {path: path.read_bytes() for path in [ESTATE_FILE, *rendered.rglob("*")] if path.is_file()}
    yield ESTATE_FILE
    for path, content in saved.items():
        if path.read_bytes() != content:
            path.write_bytes(content)
