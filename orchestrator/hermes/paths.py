"""Where the project's files are, and how rendered files name their estate."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ESTATE = PROJECT_ROOT / "inventory" / "estates" / "lab.yml"
RENDERED_ROOT = PROJECT_ROOT / "inventory" / "rendered"
# Lab state that must never be committed: the lab CA, ansible-runner records.
LAB_STATE = PROJECT_ROOT / ".lab"


def estate_label(path: Path) -> str:
    """The estate file as rendered headers name it: relative to the project, so output
    does not depend on the current directory or the checkout's location."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return resolved.name


def rendered_dir(estate_name: str) -> Path:
    return RENDERED_ROOT / estate_name
