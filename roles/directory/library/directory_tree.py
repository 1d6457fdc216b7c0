#!/usr/bin/python3
"""Reconcile the directory's tree with the estate's accounts, through the local ldapi socket.

The tree is the base entry, ou=people, the replicator (when there are replicas) and one
inetOrgPerson per account. Entries below people that are not accounts are deleted. A password
given for an account is checked against the stored {SSHA} hash and rewritten, with a new random
salt, only when it no longer matches; an account without one keeps its entry's password.
Binds as local root (SASL EXTERNAL), the tree's manager.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

import ldap
import ldap.modlist
from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: directory_tree
short_description: Reconcile an OpenLDAP tree with a list of accounts
options:
  suffix: {type: str, required: true}
  organization: {type: str, required: true}
  people: {type: str, required: true}
  mail_domain: {type: str, required: true}
  accounts: {type: list, elements: str, required: true}
  passwords: {type: dict, required: true, no_log: true}
  replicator_password: {type: str, required: true, no_log: true, description: "cn=replicator's; empty: no replicator"}
  uri: {type: str, default: "ldapi:///"}
"""

SALT_BYTES = 8

Entry = dict[str, list[bytes]]


def ssha(password: str, salt: bytes | None = None) -> bytes:
    """An OpenLDAP {SSHA} value: base64(SHA1(password + salt) + salt)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - the {SSHA} scheme
    return b"{SSHA}" + base64.b64encode(digest + salt)


def matches(stored: list[bytes], password: str) -> bool:
    """Whether one of the stored values is an {SSHA} hash of the password."""
    for value in stored:
        if not value.startswith(b"{SSHA}"):
            continue
        raw = base64.b64decode(value[len(b"{SSHA}") :])
        if len(raw) > 20 and hmac.compare_digest(ssha(password, raw[20:]), value):
            return True
    return False


def wanted_people(params: dict[str, Any]) -> dict[str, Entry]:
    """dn -> the attributes the module manages, for every account."""
    people = params["people"]
    result = {}
    for uid in params["accounts"]:
        result[f"uid={uid},{people}"] = {
            "objectClass": [b"inetOrgPerson"],
            "uid": [uid.encode()],
            "cn": [uid.encode()],
            "sn": [uid.encode()],
            "mail": [f"{uid}@{params['mail_domain']}".encode()],
        }
    return result


def structure(params: dict[str, Any]) -> dict[str, Entry]:
    """dn -> attributes of the entries above the people."""
    suffix, people = params["suffix"], params["people"]
    return {
        suffix: {
            "objectClass": [b"dcObject", b"organization"],
            "dc": [suffix.split(",", 1)[0].split("=", 1)[1].encode()],
            "o": [params["organization"].encode()],
        },
        people: {
            "objectClass": [b"organizationalUnit"],
            "ou": [people.split(",", 1)[0].split("=", 1)[1].encode()],
        },
    }


def differences(current: Entry, wanted: Entry) -> list[tuple[int, str, list[bytes]]]:
    """Replace operations for the managed attributes whose values differ."""
    return [
        (ldap.MOD_REPLACE, name, values)
        for name, values in wanted.items()
        if name != "objectClass" and sorted(current.get(name, [])) != sorted(values)
    ]


def reconcile(module: AnsibleModule) -> dict[str, list[str]]:
    params = module.params
    changes: dict[str, list[str]] = {"added": [], "modified": [], "deleted": [], "passwords": []}
    conn = ldap.initialize(params["uri"])
    conn.sasl_external_bind_s()

    def read(dn: str, scope: int, attrs: list[str]) -> dict[str, Entry]:
        try:
            found = conn.search_s(dn, scope, "(objectClass=*)", attrs)
        except ldap.NO_SUCH_OBJECT:
            return {}
        return {entry_dn.lower(): {k: list(v) for k, v in attributes.items()} for entry_dn, attributes in found}

    def apply(dn: str, current: Entry | None, wanted: Entry, password: str | None) -> None:
        stored = (current or {}).get("userPassword", [])
        new_password = password is not None and not matches(stored, password)
        if current is None:
            attributes = dict(wanted)
            if password is not None:
                attributes["userPassword"] = [ssha(password)]
            changes["added"].append(dn)
            if not module.check_mode:
                conn.add_s(dn, ldap.modlist.addModlist(attributes))
            return
        operations = differences(current, wanted)
        if operations:
            changes["modified"].append(dn)
        if new_password:
            assert password is not None
            operations.append((ldap.MOD_REPLACE, "userPassword", [ssha(password)]))
            changes["passwords"].append(dn)
        if operations and not module.check_mode:
            conn.modify_s(dn, operations)

    attrs = ["objectClass", "dc", "o", "ou", "uid", "cn", "sn", "mail", "userPassword"]
    for dn, wanted in structure(params).items():
        apply(dn, read(dn, ldap.SCOPE_BASE, attrs).get(dn.lower()), wanted, None)

    # The replicas' account exists only while there are replicas.
    replicator = f"cn=replicator,{params['suffix']}"
    existing = read(replicator, ldap.SCOPE_BASE, attrs).get(replicator.lower())
    if params["replicator_password"]:
        wanted = {"objectClass": [b"applicationProcess", b"simpleSecurityObject"], "cn": [b"replicator"]}
        apply(replicator, existing, wanted, params["replicator_password"])
    elif existing is not None:
        changes["deleted"].append(replicator)
        if not module.check_mode:
            conn.delete_s(replicator)

    current = read(params["people"], ldap.SCOPE_ONELEVEL, attrs)
    passwords: dict[str, str] = params["passwords"]
    for dn, wanted in wanted_people(params).items():
        uid = wanted["uid"][0].decode()
        # An empty password is none: the entry keeps what was set by other means (docs/directory.md).
        apply(dn, current.pop(dn.lower(), None), wanted, passwords.get(uid) or None)
    for dn in sorted(current):
        changes["deleted"].append(dn)
        if not module.check_mode:
            conn.delete_s(dn)
    conn.unbind_s()
    return changes


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "suffix": {"type": "str", "required": True},
            "organization": {"type": "str", "required": True},
            "people": {"type": "str", "required": True},
            "mail_domain": {"type": "str", "required": True},
            "accounts": {"type": "list", "elements": "str", "required": True},
            "passwords": {"type": "dict", "required": True, "no_log": True},
            "replicator_password": {"type": "str", "required": True, "no_log": True},
            "uri": {"type": "str", "default": "ldapi:///"},
        },
        supports_check_mode=True,
    )
    try:
        changes = reconcile(module)
    except ldap.LDAPError as error:
        module.fail_json(msg=f"reconciling the directory failed: {type(error).__name__}: {error}")
    module.exit_json(changed=any(changes.values()), changes=changes)


if __name__ == "__main__":
    main()
