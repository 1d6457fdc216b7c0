"""The accounts source: who has a mailbox, and who has a quota other than the default.

The file holds one username per line, optionally followed by a quota override
("fanf2 1GB"); '#' starts a comment. It never holds passwords: those live in the
vault (lab) or the directory service.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ByteSize, TypeAdapter, ValidationError

from hermes.errors import Problem

# username -> quota override in bytes, or None for the estate's default quota.
Accounts = dict[str, int | None]

_LINE = re.compile(r"^([a-z][a-z0-9-]{0,31})(?:[ \t]+(\S+))?$")
_SIZE: TypeAdapter[ByteSize] = TypeAdapter(ByteSize)


def parse_accounts(text: str, label: str) -> tuple[Accounts, list[Problem]]:
    """Parse an accounts file; problems name the file and line."""
    accounts: Accounts = {}
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        where = f"accounts ({label}:{number})"
        if match is None:
            problems.append(Problem(where, f"{line!r} is not 'username [quota]' with a lower-case username"))
            continue
        name, quota = match.groups()
        if name in accounts:
            problems.append(Problem(where, f"user {name!r} is listed twice"))
            continue
        accounts[name] = None
        if quota is not None:
            try:
                accounts[name] = int(_SIZE.validate_python(quota))
            except ValidationError:
                problems.append(Problem(where, f"quota {quota!r} is not a size such as 1GB"))
    return accounts, problems


def read_accounts(path: Path) -> tuple[Accounts, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return {}, [Problem("accounts", f"cannot read {path}: {getattr(error, 'strerror', None) or error}")]
    return parse_accounts(text, path.name)
