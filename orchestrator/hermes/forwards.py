"""A forwarding domain's table: where each of its addresses goes, as the people chose.

Seed 001: "fanf2@cam - forwarding set up on Jackdaw": the University's own domain forwards each
person's address to wherever they chose, their Hermes account or a department's server. The
table is the user administration's export of those choices, one "local-part: target" per line
(a username of the accounts' domain or a full address); '#' starts a comment. A personal
account it does not list forwards to itself; any other local part, a shared account's among
them, has no address in the domain.
"""

from __future__ import annotations

import re
from pathlib import Path

from hermes.errors import Problem

# local part (lower case) -> target
Forwards = dict[str, str]

_LINE = re.compile(r"^([a-z0-9][a-z0-9._+-]{0,63}):[ \t]*([a-z][a-z0-9-]{0,31}|[A-Za-z0-9][A-Za-z0-9._+-]{0,63}@[a-z0-9.-]+)$")


def parse_forwards(text: str, label: str, path: str) -> tuple[Forwards, list[Problem]]:
    """Parse a forwarding table; problems name ``path`` (the estate field), the file and line."""
    forwards: Forwards = {}
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path} ({label}:{number})"
        match = _LINE.match(line)
        if match is None:
            problems.append(Problem(where, f"{line!r} is not 'local-part: target' with a lower-case local part"))
            continue
        local, target = match.groups()
        if local in forwards:
            problems.append(Problem(where, f"local part {local!r} is listed twice"))
            continue
        forwards[local] = target
    return forwards, problems


def read_forwards(file: Path, path: str) -> tuple[Forwards, list[Problem]]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return {}, [Problem.unreadable(path, file, error)]
    return parse_forwards(text, file.name, path)
