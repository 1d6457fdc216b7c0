"""Placement edits that would put a user's mail on another pair than the one holding it.

An edit to ``placement`` changes where the MX hubs deliver and where the proxies send a
user's logins, but it does not move a mailbox: the user would find an empty one on the new
pair while their mail stays on the old (TRIUMF's and Cambridge's lesson, docs/store.md).
Where a user's mail is, is what the committed render says: it is what was deployed. A fresh
render that relocates a user who is in it is refused unless the operator says the user's mail
has been moved (``hermesctl render --accept-move USER``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from hermes.errors import ExitCode, HermesError, Problem
from hermes.render import PLACEMENT_FILE

# How many relocated users a refusal names; a block (a whole letter) can be thousands.
SHOWN = 20


@dataclass(frozen=True, order=True)
class Relocation:
    """``user``'s mail is on pair ``held_on``; the new placement puts them on ``placed_on``."""

    user: str
    held_on: str
    placed_on: str


def _committed_text(rendered: Path) -> str | None:
    path = rendered / PLACEMENT_FILE
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise RelocationError([Problem.unreadable("placement", path, error)], ()) from error


def committed_placement(rendered: Path, text: str) -> dict[str, str]:
    """user -> pair from ``text``, the placement file of the rendered inventory ``rendered``."""
    # 37,600 users in hermes-2007: libyaml reads them in 0.4 s. Safe either way.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        document = yaml.load(text, Loader=loader)  # noqa: S506
    except yaml.YAMLError as error:
        document = error
    placement = document.get("hermes_placement") if isinstance(document, dict) else None
    if not isinstance(placement, dict):
        reason = f"{rendered / PLACEMENT_FILE} holds no hermes_placement map (edited by hand?): render into an empty directory"
        raise RelocationError([Problem("placement", reason)], ())
    return {str(user): str(pair) for user, pair in placement.items()}


def refuse_relocating_render(rendered: Path, files: Mapping[str, str], placed: Mapping[str, str], moved: Collection[str]) -> None:
    """Refuse ``files``, a fresh render of ``rendered``, if it relocates a user not in ``moved``.

    A first render relocates nobody; neither does one whose placement file is unchanged,
    the common case, which is told without reading the map.
    """
    text = _committed_text(rendered)
    if text is None or (text == files[PLACEMENT_FILE] and not moved):
        held: Mapping[str, str] = {}
    else:
        held = committed_placement(rendered, text)
    refuse_unmoved(held, placed, moved)


def relocations(held: Mapping[str, str], placed: Mapping[str, str]) -> list[Relocation]:
    """Users in both maps whose pair differs; a user new to the estate, or gone, moves nothing."""
    return sorted(Relocation(user, held[user], pair) for user, pair in placed.items() if user in held and held[user] != pair)


def refuse_unmoved(held: Mapping[str, str], placed: Mapping[str, str], moved: Collection[str]) -> None:
    """Raise RelocationError naming every relocated user whose move is not in ``moved``.

    An accepted name that relocates nobody is refused too: a typo must not pass for a
    move that was carried out.
    """
    found = relocations(held, placed)
    relocated = {r.user for r in found}
    stray = sorted(set(moved) - relocated)
    unmoved = [r for r in found if r.user not in moved]
    if unmoved or stray:
        problems = [Problem("--accept-move", f"{user}: this render does not relocate {user}") for user in stray]
        raise RelocationError(problems, unmoved)


class RelocationError(HermesError):
    """A placement edit would relocate users whose mail was not moved."""

    exit_code = ExitCode.INVALID

    def __init__(self, problems: list[Problem], unmoved: Collection[Relocation]) -> None:
        self.problems = problems
        self.unmoved = sorted(unmoved)
        lines = [str(p) for p in problems]
        if self.unmoved:
            lines.append(
                f"placement: {len(self.unmoved):,} user(s) would be placed on another pair than the one holding "
                "their mail; an edit to placement moves no mail, so they would find an empty mailbox:"
            )
            lines.extend(f"  {r.user}: mail on {r.held_on}, placed on {r.placed_on}" for r in self.unmoved[:SHOWN])
            if len(self.unmoved) > SHOWN:
                lines.append(f"  ... and {len(self.unmoved) - SHOWN:,} more")
            first = self.unmoved[0]
            lines.append(
                f"Keep them where their mail is with placement.overrides (e.g. {first.user}: {first.held_on}); "
                f"or, once their mail has been moved to the new pair, render with --accept-move {first.user} "
                "(once for each user) (docs/store.md, Placement changes)"
            )
        super().__init__("\n".join(lines))
