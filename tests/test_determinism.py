"""Rendering does not depend on the process: two hermesctl runs with different string hashing
(PYTHONHASHSEED), so different set and dict-of-set orders, write byte-identical trees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hermes.paths import PROJECT_ROOT

HERMESCTL = Path(sys.executable).with_name("hermesctl")
SEEDS = ("1", "2")


def _env(seed: str) -> dict[str, str]:
    return {**os.environ, "PYTHONHASHSEED": seed}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_seeds_hash_strings_differently() -> None:
    # The control: without it, equal trees could mean the seed never reached the process.
    command = [sys.executable, "-c", "print(hash('hermes'))"]
    hashes = {subprocess.run(command, env=_env(seed), capture_output=True, text=True, check=True).stdout for seed in SEEDS}
    assert len(hashes) == len(SEEDS)


@pytest.mark.parametrize("estate", ["lab", "hermes-2007"])
def test_render_is_byte_identical_across_hash_seeds(estate: str, tmp_path: Path) -> None:
    estate_file = PROJECT_ROOT / "inventory" / "estates" / f"{estate}.yml"
    # Both processes at once: hermes-2007 takes a few seconds each.
    runs = {
        seed: subprocess.Popen(
            [str(HERMESCTL), "render", "--estate", str(estate_file), "--output", str(tmp_path / seed)],
            env=_env(seed),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in SEEDS
    }
    for seed, process in runs.items():
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"PYTHONHASHSEED={seed}: {output}"
    first, second = (_tree(tmp_path / seed) for seed in SEEDS)
    assert "hosts.yml" in first
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
