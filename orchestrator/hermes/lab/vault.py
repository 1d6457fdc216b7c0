"""The lab's secrets: an ansible-vault file of generated values, never committed.

A real estate keeps its vault file (encrypted) beside its estate and the password
outside git; the lab generates both under .lab/<estate>/ so every secret a role
needs exists without anyone typing one. Values are stable across runs: a new
account gets a password, existing ones keep theirs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.parsing.vault import VaultLib, VaultSecret

from hermes.render.inventory import SECRETS


def _vault(password: bytes) -> VaultLib:
    return VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password))])


def read_lab_vault(vault_file: Path, password_file: Path) -> dict[str, Any]:
    data = yaml.safe_load(_vault(password_file.read_bytes().strip()).decrypt(vault_file.read_bytes()))
    return data if isinstance(data, dict) else {}


def ensure_lab_vault(directory: Path, users: Iterable[str]) -> tuple[Path, Path]:
    """Create or complete the lab vault; return (vault file, vault password file)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    vault_file, password_file = directory / "vault.yml", directory / "vault-password"
    if not password_file.exists():
        password_file.touch(mode=0o600)
        password_file.write_text(secrets.token_urlsafe(32) + "\n")
    current = read_lab_vault(vault_file, password_file) if vault_file.exists() else {}
    wanted = dict(current)
    for name in SECRETS:
        if name != "user_passwords":
            wanted.setdefault(f"vault_hermes_{name}", secrets.token_urlsafe(24))
    passwords = dict(wanted.get("vault_hermes_user_passwords") or {})
    for user in users:
        passwords.setdefault(user, secrets.token_urlsafe(12))
    wanted["vault_hermes_user_passwords"] = dict(sorted(passwords.items()))
    if wanted != current:
        plaintext = yaml.safe_dump(wanted, sort_keys=True).encode()
        vault_file.write_bytes(_vault(password_file.read_bytes().strip()).encrypt(plaintext))
        vault_file.chmod(0o600)
    return vault_file, password_file
