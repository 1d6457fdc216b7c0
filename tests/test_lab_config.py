"""Molecule platforms start exactly like the Python lab's containers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hermes.lab.image import podman_run_args
from hermes.paths import PROJECT_ROOT

CACHE = "${HERMES_LAB_CACHE:-/var/cache/hermes-lab}"
SCENARIOS = sorted((PROJECT_ROOT / "molecule").glob("*/molecule.yml"))


def _as_run_args(platform: dict[str, Any]) -> set[str]:
    args = set(platform.get("extra_opts", []))
    args |= {f"--volume={volume}" for volume in platform.get("volumes", [])}
    if platform.get("systemd") == "always":
        args.add("--systemd=always")
    return args


def _platforms(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text()).get("platforms", []))


@pytest.mark.parametrize(
    "platform",
    [p for path in [PROJECT_ROOT / ".config" / "molecule" / "config.yml", *SCENARIOS] for p in _platforms(path)],
    ids=lambda p: p["name"],
)
def test_molecule_platform_matches_the_lab(platform: dict[str, Any]) -> None:
    assert _as_run_args(platform) == set(podman_run_args(cache=Path(CACHE)))
    assert platform["command"] == "/sbin/init"
    assert platform["image"].startswith("${HERMES_BASE_IMAGE")
