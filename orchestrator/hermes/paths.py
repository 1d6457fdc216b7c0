"""Where the project's files are, where an estate's own files go, and how rendered files name
their estate.

An estate (its estate file, accounts file and rendered inventory) may live in its owner's
repository rather than in this checkout. Its *home* is the parent of the estate file's
directory when that directory is named ``estates``, else the estate file's directory; its
rendered inventory is ``<home>/rendered/<estate>/`` and its run records are
``<home>/.hermes/<estate>/runs/``. The shipped estates (``inventory/estates/``) therefore have
``inventory/`` as their home. Playbooks and roles always come from this checkout.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ESTATE = PROJECT_ROOT / "inventory" / "estates" / "lab.yml"
# The home of the estates shipped with hermes.
SHIPPED_HOME = PROJECT_ROOT / "inventory"
# Lab state that must never be committed: the lab CA and the lab vaults.
LAB_STATE = PROJECT_ROOT / ".lab"


def estate_home(estate_file: Path) -> Path:
    """The directory an estate's own files live under, for an absolute ``estate_file``."""
    directory = estate_file.parent
    return directory.parent if directory.name == "estates" else directory


def rendered_dir(estate_name: str, home: Path = SHIPPED_HOME) -> Path:
    return home / "rendered" / estate_name


def runs_dir(estate_name: str, home: Path) -> Path:
    """Where ansible-runner keeps the records of an estate's deployments (git-ignored)."""
    return home / ".hermes" / estate_name / "runs"


def estate_label(path: Path) -> str:
    """The estate file as rendered headers name it: relative to the checkout for an estate
    inside it, else relative to the estate's home, so output depends neither on the current
    directory nor on where the checkout or the estate's repository is."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return resolved.relative_to(estate_home(resolved)).as_posix()
