"""Ansible-vault files: opened as ansible-playbook opens them, and the lab's generated one.

A real estate keeps its vault file (encrypted) beside its estate and the password
outside git; the lab generates both under .lab/<estate>/ so every secret a role
needs exists without anyone typing one. Values are stable across runs: a new
account gets a password, existing ones keep theirs. The prechecks of a deploy
(:mod:`hermes.precheck`) open either kind with :func:`read_vault`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import AnsibleVaultFormatError, VaultLib, VaultSecret, get_file_vault_secret, is_encrypted

from hermes.errors import VaultError
from hermes.render.inventory import SECRETS


def _vault(secret: VaultSecret) -> VaultLib:
    return VaultLib([(DEFAULT_VAULT_ID_MATCH, secret)])


def file_secret(password_file: Path) -> VaultSecret:
    """The password ``--vault-password-file`` gives ansible-playbook: the file's text, stripped,
    or an executable file's output."""
    try:
        secret = get_file_vault_secret(filename=str(password_file), loader=DataLoader())
        secret.load()
    except AnsibleError as error:
        raise VaultError(f"vault password file {password_file}: {error}") from None
    return secret


def typed_secret(text: str) -> VaultSecret:
    """A password typed at ansible-playbook's prompt, which strips it."""
    return VaultSecret(text.encode().strip())


def read_vault(vault_file: Path, secret: VaultSecret) -> dict[str, Any]:
    """The variables an ansible-vault file defines; VaultError if it cannot be read, decrypted
    with ``secret`` or parsed (the message holds no secret)."""
    try:
        data = vault_file.read_bytes()
    except OSError as error:
        raise VaultError(f"{vault_file}: cannot be read: {error.strerror}") from None
    if not is_encrypted(data):
        raise VaultError(f"{vault_file}: not an ansible-vault file (encrypt it with ansible-vault)")
    try:
        plaintext = _vault(secret).decrypt(data)
    except AnsibleVaultFormatError as error:
        raise VaultError(f"{vault_file}: a damaged ansible-vault file ({error})") from None
    except AnsibleError:
        raise VaultError(f"{vault_file}: cannot be decrypted with the vault password given") from None
    try:
        variables = yaml.safe_load(plaintext)
    except yaml.YAMLError:
        # Not the parser's message: it would quote the decrypted text.
        raise VaultError(f"{vault_file}: decrypted, but not YAML") from None
    if not isinstance(variables, dict):
        raise VaultError(f"{vault_file}: decrypted, but not a mapping of variables")
    return variables


def read_lab_vault(vault_file: Path, password_file: Path) -> dict[str, Any]:
    return read_vault(vault_file, file_secret(password_file))


def ensure_lab_vault(directory: Path, users: Iterable[str], keyed: Mapping[str, Iterable[str]]) -> tuple[Path, Path]:
    """Create or complete the lab vault; return (vault file, vault password file)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    vault_file, password_file = directory / "vault.yml", directory / "vault-password"
    if not password_file.exists():
        password_file.touch(mode=0o600)
        password_file.write_text(secrets.token_urlsafe(32) + "\n")
    current = read_lab_vault(vault_file, password_file) if vault_file.exists() else {}
    wanted = dict(current)
    for name in SECRETS:
        if name in keyed:
            # A mapping left by an earlier lab (or a single value of older ones) is completed.
            entries = wanted.get(f"vault_hermes_{name}")
            entries = dict(entries) if isinstance(entries, dict) else {}
            for key in keyed[name]:
                entries.setdefault(key, secrets.token_urlsafe(24))
            wanted[f"vault_hermes_{name}"] = dict(sorted(entries.items()))
        elif name != "user_passwords":
            wanted.setdefault(f"vault_hermes_{name}", secrets.token_urlsafe(24))
    passwords = dict(wanted.get("vault_hermes_user_passwords") or {})
    for user in users:
        passwords.setdefault(user, secrets.token_urlsafe(12))
    wanted["vault_hermes_user_passwords"] = dict(sorted(passwords.items()))
    if wanted != current:
        plaintext = yaml.safe_dump(wanted, sort_keys=True).encode()
        vault_file.write_bytes(_vault(file_secret(password_file)).encrypt(plaintext))
        vault_file.chmod(0o600)
    return vault_file, password_file
