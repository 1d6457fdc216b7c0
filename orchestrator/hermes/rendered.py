"""The rendered inventory on disk: writing it whole, and comparing it with a fresh render."""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Mapping
from pathlib import Path


def _on_disk(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8") for path in sorted(root.rglob("*")) if path.is_file()
    }


def changed_files(root: Path, files: Mapping[str, str]) -> list[str]:
    """Relative paths that a write of ``files`` would add, change or remove."""
    current = _on_disk(root)
    return sorted(name for name in current.keys() | files.keys() if current.get(name) != files.get(name))


def diff(root: Path, files: Mapping[str, str]) -> str:
    """A unified diff from what is on disk to ``files``."""
    current = _on_disk(root)
    chunks: list[str] = []
    for name in changed_files(root, files):
        chunks.extend(
            difflib.unified_diff(
                current.get(name, "").splitlines(keepends=True),
                files.get(name, "").splitlines(keepends=True),
                fromfile=f"a/{name}" if name in current else "/dev/null",
                tofile=f"b/{name}" if name in files else "/dev/null",
            )
        )
    return "".join(chunks)


def write_tree(root: Path, files: Mapping[str, str]) -> list[str]:
    """Replace the directory ``root`` with exactly ``files``; return what changed.

    The new tree is written beside the old one and swapped in with renames, so
    an interrupted render never leaves a half-written inventory.
    """
    changed = changed_files(root, files)
    if not changed:
        return changed
    staging = root.with_name(f".{root.name}.new")
    retired = root.with_name(f".{root.name}.old")
    for leftover in (staging, retired):
        shutil.rmtree(leftover, ignore_errors=True)
    for name, text in files.items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    if root.exists():
        root.rename(retired)
    staging.rename(root)
    shutil.rmtree(retired, ignore_errors=True)
    return changed
