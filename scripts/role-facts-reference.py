#!/usr/bin/env python3
"""Write docs/role-facts.md from the role-fact models, the playbooks and the roles.

python scripts/role-facts-reference.py          # rewrite the file
python scripts/role-facts-reference.py --check  # exit 1 if it is stale
"""

from __future__ import annotations

import sys

from hermes.errors import ExitCode
from hermes.paths import PROJECT_ROOT
from hermes.role_reference import role_facts_reference

DOC = PROJECT_ROOT / "docs" / "role-facts.md"


def main(argv: list[str]) -> int:
    text = role_facts_reference(PROJECT_ROOT / "playbooks", PROJECT_ROOT / "roles")
    if "--check" in argv:
        if DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is stale: run python scripts/role-facts-reference.py", file=sys.stderr)
            return ExitCode.STALE
        return ExitCode.OK
    DOC.write_text(text, encoding="utf-8")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
