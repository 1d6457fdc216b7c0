#!/usr/bin/python3
"""Reconcile Mailman 3's lists with the estate's, through its REST API on the lists host.

The domain exists; every given list exists; each list's owners and members are exactly the
given addresses (compared case-insensitively, as Mailman does). Members are added
pre-verified, pre-confirmed and pre-approved, without a welcome message; removing one goes
through Mailman's unsubscription, which sends its goodbye message when the list says so. Lists
of the domain that are not given are returned as ``unmanaged`` and left alone: deleting a list
destroys its archive and held messages, which is an operator's decision, not a deploy's.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: mailman_lists
short_description: Reconcile Mailman 3's lists, owners and members with a given set
options:
  domain: {type: str, required: true, description: the lists' mail domain}
  lists:
    type: list
    elements: dict
    required: true
    description: "[{name, owners: [address], members: [address]}]"
  url: {type: str, default: "http://127.0.0.1:8001/3.1", description: the REST API's root}
  user: {type: str, required: true}
  password: {type: str, required: true, no_log: true}
  timeout: {type: int, default: 60, description: seconds to wait for the API to answer at all}
"""

ROLES = ("owner", "member")


class RestError(Exception):
    """A REST call that failed: what was asked and what Mailman answered."""


class Rest:
    """Mailman's REST API: JSON in and out, HTTP basic authentication."""

    def __init__(self, url: str, user: str, password: str, timeout: int) -> None:
        self.url = url.rstrip("/")
        self.authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.deadline = time.monotonic() + timeout

    def call(self, method: str, path: str, data: dict[str, Any] | None = None) -> tuple[int, Any]:
        query, body = "", None
        if data is not None and method == "DELETE":
            query = "?" + urllib.parse.urlencode(data)
        elif data is not None:
            body = urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(self.url + path + query, data=body, method=method)  # noqa: S310 - the API's http URL
        request.add_header("Authorization", self.authorization)
        while True:
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - as above
                    text = response.read()
                    return response.status, json.loads(text) if text else None
            except urllib.error.HTTPError as error:
                if error.code == 404 and method == "GET":
                    return 404, None
                detail = error.read().decode(errors="replace")
                raise RestError(f"{method} {path}: HTTP {error.code} {detail}") from error
            except urllib.error.URLError as error:
                # Just started: the REST runner may not accept connections yet.
                if time.monotonic() > self.deadline:
                    raise RestError(f"{method} {path}: {error.reason}") from error
                time.sleep(2)

    def get(self, path: str) -> Any:
        return self.call("GET", path)[1]


def _emails(entries: Any) -> dict[str, str]:
    """Lower-cased address -> member id, from a roster."""
    return {entry["email"].lower(): entry["member_id"] for entry in (entries or {}).get("entries", [])}


def reconcile(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    rest = Rest(params["url"], params["user"], params["password"], params["timeout"])
    domain: str = params["domain"]
    changes: dict[str, Any] = {"domain_created": False, "lists_created": []}
    for role in ROLES:
        changes[f"{role}s_added"] = {}
        changes[f"{role}s_removed"] = {}

    existing: set[str] = set()
    if rest.get(f"/domains/{domain}") is None:
        changes["domain_created"] = True
        if not module.check_mode:
            rest.call("POST", "/domains", {"mail_host": domain})
    else:
        existing = {entry["list_name"] for entry in (rest.get(f"/domains/{domain}/lists") or {}).get("entries", [])}

    for wanted in params["lists"]:
        name = wanted["name"]
        list_id = f"{name}.{domain}"
        rosters: dict[str, dict[str, str]] = {role: {} for role in ROLES}
        if name in existing:
            rosters = {role: _emails(rest.get(f"/lists/{list_id}/roster/{role}")) for role in ROLES}
        else:
            changes["lists_created"].append(name)
            if not module.check_mode:
                rest.call("POST", "/lists", {"fqdn_listname": f"{name}@{domain}"})
        for role in ROLES:
            added, removed = _sync_roster(module, rest, list_id, role, addresses=wanted[f"{role}s"], roster=rosters[role])
            if added:
                changes[f"{role}s_added"][name] = added
            if removed:
                changes[f"{role}s_removed"][name] = removed

    wanted_names = {wanted["name"] for wanted in params["lists"]}
    return {"changes": changes, "unmanaged": sorted(existing - wanted_names)}


def _sync_roster(
    module: AnsibleModule, rest: Rest, list_id: str, role: str, *, addresses: list[str], roster: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Make one roster of a list exactly ``addresses``: (addresses added, addresses removed)."""
    given = {address.lower(): address for address in addresses}
    added = sorted(given.keys() - roster.keys())
    removed = sorted(roster.keys() - given.keys())
    if not module.check_mode:
        # Additions first, so a list never goes without an owner while its owners change.
        for address in added:
            _subscribe(rest, list_id, given[address], role)
        for address in removed:
            data = {"pre_approved": "true", "pre_confirmed": "true"} if role == "member" else None
            rest.call("DELETE", f"/members/{roster[address]}", data)
    return [given[address] for address in added], removed


def _subscribe(rest: Rest, list_id: str, address: str, role: str) -> None:
    data = {"list_id": list_id, "subscriber": address, "role": role}
    if role == "member":
        data |= {
            "pre_verified": "true",
            "pre_confirmed": "true",
            "pre_approved": "true",
            "send_welcome_message": "false",
        }
    status, _ = rest.call("POST", "/members", data)
    if status != 201:
        # 202: Mailman wants a confirmation or an approval first; the pre_ flags should prevent it.
        raise RestError(f"subscribing {address} to {list_id} as {role}: HTTP {status}, not subscribed")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "domain": {"type": "str", "required": True},
            "lists": {"type": "list", "elements": "dict", "required": True},
            "url": {"type": "str", "default": "http://127.0.0.1:8001/3.1"},
            "user": {"type": "str", "required": True},
            "password": {"type": "str", "required": True, "no_log": True},
            "timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    try:
        result = reconcile(module)
    except RestError as error:
        module.fail_json(msg=f"reconciling the lists failed: {error}")
    changes = result["changes"]
    changed = changes["domain_created"] or any(bool(value) for key, value in changes.items() if key != "domain_created")
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
