"""Which store pair holds which user: by first letter (WHOI), with per-user overrides."""

from __future__ import annotations

import string
from collections.abc import Iterable

from pydantic import Field, field_validator

from hermes.model.base import Name, StrictModel, Username


def letters_of(spec: str) -> list[str]:
    """Expand a letter spec such as "a-m", "x" or "a,e,i" into its letters."""
    letters: list[str] = []
    for part in spec.replace(" ", "").split(","):
        if len(part) == 1 and part in string.ascii_lowercase:
            letters.append(part)
        elif len(part) == 3 and part[1] == "-" and part[0] <= part[2] and {part[0], part[2]} <= set(string.ascii_lowercase):
            letters.extend(chr(c) for c in range(ord(part[0]), ord(part[2]) + 1))
        else:
            raise ValueError(f"{spec!r} is not a letter spec such as 'a-m', 'x' or 'a,e,i'")
    return letters


class Placement(StrictModel):
    letters: dict[str, Name] = Field(
        description="letter spec ('a-m', 'x', 'a,e,i') -> store pair of the users whose names start with it"
    )
    overrides: dict[Username, Name] = Field(
        default_factory=dict, description="user -> store pair, for users moved off their letter's pair"
    )

    @field_validator("letters")
    @classmethod
    def _specs_parse(cls, letters: dict[str, str]) -> dict[str, str]:
        for spec in letters:
            letters_of(spec)
        return letters

    def pair_by_letter(self) -> dict[str, str]:
        """letter -> pair; the estate invariants check every letter appears exactly once."""
        return {letter: pair for spec, pair in self.letters.items() for letter in letters_of(spec)}

    def place(self, users: Iterable[str]) -> dict[str, str]:
        """user -> pair for every user; call only on an estate that passed its invariants."""
        by_letter = self.pair_by_letter()
        overrides = self.overrides
        return {user: overrides.get(user) or by_letter[user[0]] for user in users}
