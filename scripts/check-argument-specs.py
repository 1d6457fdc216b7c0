#!/usr/bin/env python3
"""Fail when a role's defaults/main.yml and meta/argument_specs.yml disagree.

For every role under roles/ (or the role directories given as arguments): each variable
in defaults/main.yml must be an option of the `main` entry point of
meta/argument_specs.yml and vice versa, with an equal `default`, a `description`, and a
`type` that fits the default value; an option of another entry point must equal main's. Prints one line per problem; exit status 1
(hermes.errors.ExitCode.OUT_OF_SYNC) if any.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from hermes.errors import ExitCode

REPO = Path(__file__).resolve().parent.parent

# argument_specs type -> Python types a default of that type may have.
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "raw": (object,),
    "bool": (bool,),
    "int": (int,),
    "float": (float, int),
    "list": (list,),
    "dict": (dict,),
}


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _type_fits(spec_type: str, value: Any) -> bool:
    if value is None:
        return True
    allowed = _TYPES.get(spec_type)
    if allowed is None:
        return True
    if isinstance(value, bool) and spec_type in ("int", "float"):
        return False
    if isinstance(value, str) and "{{" in value:
        return True  # a template: its type is only known at run time
    return isinstance(value, allowed)


def check_role(role: Path) -> list[str]:
    """Problems of one role directory, as printable lines."""
    name = role.name
    defaults_file = role / "defaults" / "main.yml"
    specs_file = role / "meta" / "argument_specs.yml"
    if not defaults_file.is_file() and not specs_file.is_file():
        return []
    if not specs_file.is_file():
        return [f"{name}: defaults/main.yml has no meta/argument_specs.yml"]
    defaults = (_load(defaults_file) or {}) if defaults_file.is_file() else {}
    specs = _load(specs_file) or {}
    options = specs.get("argument_specs", {}).get("main", {}).get("options") or {}
    if not isinstance(defaults, dict):
        return [f"{name}: defaults/main.yml is not a mapping"]

    problems: list[str] = []
    for key in defaults.keys() - options.keys():
        problems.append(f"{name}: {key} is in defaults/main.yml but not in argument_specs")
    for key in options.keys() - defaults.keys():
        if options[key].get("required", False):
            continue  # a required variable has no default, by definition
        problems.append(f"{name}: {key} is in argument_specs but not in defaults/main.yml")
    for key in sorted(defaults.keys() & options.keys()):
        option = options[key] or {}
        if "default" not in option:
            problems.append(f"{name}: {key} has no default in argument_specs")
        elif option["default"] != defaults[key]:
            problems.append(
                f"{name}: {key} defaults differ: defaults/main.yml {defaults[key]!r}, argument_specs {option['default']!r}"
            )
        if not option.get("description"):
            problems.append(f"{name}: {key} has no description in argument_specs")
        spec_type = option.get("type", "str")
        if not _type_fits(spec_type, defaults[key]):
            problems.append(f"{name}: {key} is declared {spec_type} but defaults to {defaults[key]!r}")
        choices = option.get("choices")
        if choices is not None and defaults[key] not in choices:
            problems.append(f"{name}: {key} default {defaults[key]!r} is not among {choices}")
    return sorted(problems + _entry_points(name, specs.get("argument_specs", {})))


def _entry_points(name: str, entries: dict[str, Any]) -> list[str]:
    """Another entry point (tasks_from) restates some of main's options: word for word."""
    main_options = (entries.get("main") or {}).get("options") or {}
    return [
        f"{name}: {key} of entry point {entry} differs from main's"
        for entry, spec in entries.items()
        if entry != "main"
        for key, option in ((spec or {}).get("options") or {}).items()
        if option != main_options.get(key)
    ]


def main(argv: list[str]) -> int:
    roles = [Path(a) for a in argv] or sorted(p for p in (REPO / "roles").iterdir() if p.is_dir())
    problems: list[str] = []
    for role in roles:
        problems.extend(check_role(role))
    for line in problems:
        print(line)
    checked = ", ".join(r.name for r in roles) or "none"
    if problems:
        print(f"argument_specs: {len(problems)} problem(s) in roles: {checked}", file=sys.stderr)
        return ExitCode.OUT_OF_SYNC
    print(f"argument_specs: defaults and argument_specs agree in roles: {checked}", file=sys.stderr)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
