"""What the deploys of the lab estate left behind: each deploy's record (ansible-runner's
artifacts and hermes's summary.json) and its output hold no secret.

The secrets are the lab vault's values, read with its password; a private key is anything
PEM calls one. The search is shown to find both where they are (the decrypted vault, a host's
key file) before it is trusted to find none in the records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hermes.lab.vault import read_lab_vault
from hermes.paths import LAB_STATE

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
STATE = LAB_STATE / "lab"
PRIVATE_KEY = b"PRIVATE KEY"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _found(data: bytes, secrets: list[bytes]) -> list[str]:
    """What of ``secrets`` (and any PEM private key) ``data`` holds, named without the value."""
    found = [f"secret #{i}" for i, secret in enumerate(secrets) if secret in data]
    return found + (["a private key"] if PRIVATE_KEY in data else [])


@pytest.fixture(scope="module")
def secrets() -> list[bytes]:
    values = sorted(set(_strings(read_lab_vault(STATE / "vault.yml", STATE / "vault-password"))))
    assert values, "the lab vault is empty"
    return [value.encode() for value in values]


@pytest.fixture(scope="module")
def deploys() -> list[dict[str, Any]]:
    """Each deploy's output as converge.yml kept it, oldest first."""
    kept = sorted((EPHEMERAL / "deploys").glob("*.json"))
    return [json.loads(path.read_text()) for path in kept]


def test_the_search_finds_what_it_looks_for(secrets: list[bytes]) -> None:
    vault_text = b"\n".join(secrets)
    assert _found(vault_text, secrets) == [f"secret #{i}" for i in range(len(secrets))]
    key_file = next((LAB_STATE / "pki" / "hosts").glob("*.key"))
    assert _found(key_file.read_bytes(), secrets) == ["a private key"]


def test_two_deploys_the_second_changing_nothing(deploys: list[dict[str, Any]]) -> None:
    summaries = [json.loads(deploy["stdout"]) for deploy in deploys]
    assert [s["status"] for s in summaries] == ["successful", "successful"]
    assert summaries[0]["changed"] > 0 and summaries[1]["changed"] == 0
    assert summaries[0]["record"] != summaries[1]["record"]


def test_no_secret_in_any_record_or_output(secrets: list[bytes], deploys: list[dict[str, Any]]) -> None:
    leaks = {}
    for number, deploy in enumerate(deploys):
        output = (deploy["stdout"] + deploy["stderr"]).encode()
        if found := _found(output, secrets):
            leaks[f"output of deploy {number}"] = found
        record = Path(json.loads(deploy["stdout"])["record"])
        files = [path for path in record.rglob("*") if path.is_file()]
        assert len(files) > 100, record  # ansible-runner's events: the record really is there
        for path in files:
            if found := _found(path.read_bytes(), secrets):
                leaks[str(path)] = found
    assert leaks == {}
