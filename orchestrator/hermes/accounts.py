"""The accounts source: who has a mailbox, who has a quota other than the default, and which
accounts are shared rather than a person's.

The file holds one username per line, optionally followed by a quota override ("fanf2 1GB")
and then by ``shared`` for an account several people use ("confide shared", seed 001:
"confide@hermes - shared accounts", which "do not have an equivalent @cam address"); '#'
starts a comment. It never holds passwords: those live in the vault (lab) or the directory
service.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ByteSize, TypeAdapter, ValidationError

from hermes.errors import Problem

# username -> quota override in bytes, or None for the estate's default quota.
Accounts = dict[str, int | None]

_LINE = re.compile(r"^([a-z][a-z0-9-]{0,31})(?:[ \t]+(?!shared$)(\S+))?(?:[ \t]+(shared))?$")
_SIZE: TypeAdapter[ByteSize] = TypeAdapter(ByteSize)


def parse_accounts(text: str, label: str) -> tuple[Accounts, frozenset[str], list[Problem]]:
    """Parse an accounts file: the accounts, the shared ones among them, and problems naming
    the file and line."""
    accounts: Accounts = {}
    shared: set[str] = set()
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        where = f"accounts ({label}:{number})"
        if match is None:
            problems.append(Problem(where, f"{line!r} is not 'username [quota] [shared]' with a lower-case username"))
            continue
        name, quota, is_shared = match.groups()
        if name in accounts:
            problems.append(Problem(where, f"user {name!r} is listed twice"))
            continue
        accounts[name] = None
        if is_shared:
            shared.add(name)
        if quota is not None:
            try:
                accounts[name] = int(_SIZE.validate_python(quota))
            except ValidationError:
                problems.append(Problem(where, f"quota {quota!r} is not a size such as 1GB"))
    return accounts, frozenset(shared), problems


def read_accounts(path: Path) -> tuple[Accounts, frozenset[str], list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return {}, frozenset(), [Problem.unreadable("accounts", path, error)]
    return parse_accounts(text, path.name)
