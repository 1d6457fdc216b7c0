"""Reading an estate file: YAML, then the model, then the accounts and the invariants.

Everything wrong is collected and raised as one EstateError, so a user sees every
problem, each with the path of its field, and never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netaddr
import yaml
from pydantic import ValidationError

from hermes.accounts import Accounts, read_accounts
from hermes.addressing import allocate_addresses
from hermes.errors import EstateError, Problem
from hermes.forwards import Forwards, read_forwards
from hermes.invariants import CHECKS, check_capacity, dns_forwarders, forwarding_tables, management_networks
from hermes.model import Estate

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_Loader):  # type: ignore[valid-type,misc]
    """Safe YAML loading that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a scalar", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


@dataclass(frozen=True)
class LoadedEstate:
    """A valid estate with what is derived from it: accounts, addresses, placement."""

    estate: Estate
    source: Path
    accounts: Accounts
    addresses: Mapping[str, netaddr.IPAddress]
    placement: Mapping[str, str] = field(repr=False)  # user -> store pair
    # forwarding domain -> its table (local part -> target)
    forwards: Mapping[str, Forwards] = field(default_factory=dict, repr=False)
    shared_accounts: frozenset[str] = frozenset()


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


def problems_of(error: ValidationError) -> list[Problem]:
    problems = []
    for detail in error.errors(include_url=False):
        # Union members and validator functions add their own names to the path; drop them.
        loc = tuple(
            part for part in detail["loc"] if not (isinstance(part, str) and ("[" in part or part.startswith("function-")))
        )
        message = _MESSAGES.get(detail["type"], detail["msg"].removeprefix("Value error, "))
        problems.append(Problem(_field_path(loc), message))
    return problems


def parse_estate(text: str, label: str) -> Estate:
    """YAML text -> Estate model, or EstateError naming every bad field."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        reason = getattr(error, "problem", None) or str(error)
        raise EstateError(label, [Problem(where, f"invalid YAML: {reason}")]) from None
    except RecursionError:
        raise EstateError(label, [Problem("", "invalid YAML: nested too deeply")]) from None
    if not isinstance(data, dict):
        raise EstateError(label, [Problem("", "the estate file must be a YAML mapping of fields")])
    try:
        return Estate.model_validate(data)
    except ValidationError as error:
        raise EstateError(label, problems_of(error)) from None
    except RecursionError:
        raise EstateError(label, [Problem("", "the estate refers to itself (YAML aliases form a cycle)")]) from None


def load_estate(path: Path) -> LoadedEstate:
    """Read and check an estate file and its accounts file; raise EstateError on any problem."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise EstateError(label, [Problem.unreadable("", path, error)]) from None
    estate = parse_estate(text, label)
    accounts, shared_accounts, problems = read_accounts(path.parent / estate.accounts)
    forwards: dict[str, Forwards] = {}
    for i, domain in enumerate(estate.domains.forwarding):
        forwards[domain.name], table_problems = read_forwards(path.parent / domain.table, f"domains.forwarding[{i}].table")
        problems += table_problems
    addresses, address_problems = allocate_addresses(estate.networks, estate.hosts)
    problems += address_problems + dns_forwarders(estate, addresses) + management_networks(estate, addresses)
    for check in CHECKS:
        problems += check(estate, accounts)
    problems += forwarding_tables(estate, accounts, shared_accounts, forwards)
    if problems:
        raise EstateError(label, problems)
    placement = estate.placement.place(accounts)
    problems = check_capacity(estate, accounts, placement)
    if problems:
        raise EstateError(label, problems)
    return LoadedEstate(estate, path, accounts, addresses, placement, forwards, shared_accounts)
