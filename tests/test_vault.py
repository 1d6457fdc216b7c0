"""The lab vault: generated secrets, encrypted at rest, stable across runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermes.errors import VaultError
from hermes.lab.vault import ensure_lab_vault, file_secret, read_lab_vault, read_vault, typed_secret
from hermes.render.inventory import SECRETS

KEYED = {"cyrus_admin_passwords": ["backup-1", "cyrus-1"], "cyrus_replication_passwords": ["cyrus-1"]}


def test_lab_vault_is_encrypted_complete_and_stable(tmp_path: Path) -> None:
    vault, password = ensure_lab_vault(tmp_path / "lab", ["fanf2", "dpc22"], KEYED)
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    assert oct(password.stat().st_mode & 0o777) == "0o600"
    first = read_lab_vault(vault, password)
    assert set(first) == {f"vault_hermes_{name}" for name in SECRETS}
    assert set(first["vault_hermes_user_passwords"]) == {"fanf2", "dpc22"}
    for value in first["vault_hermes_user_passwords"].values():
        assert value not in vault.read_text()

    before = vault.read_bytes()
    ensure_lab_vault(tmp_path / "lab", ["fanf2", "dpc22"], KEYED)
    assert vault.read_bytes() == before

    # A new account, a new pair: each gets a password, the others keep theirs; each pair and
    # backup server its own.
    grown = {name: [*keys, "cyrus-2"] for name, keys in KEYED.items()}
    ensure_lab_vault(tmp_path / "lab", ["fanf2", "dpc22", "ph10"], grown)
    second = read_lab_vault(vault, password)
    assert second["vault_hermes_user_passwords"]["fanf2"] == first["vault_hermes_user_passwords"]["fanf2"]
    assert "ph10" in second["vault_hermes_user_passwords"]
    admins = second["vault_hermes_cyrus_admin_passwords"]
    assert admins["cyrus-1"] == first["vault_hermes_cyrus_admin_passwords"]["cyrus-1"]
    assert sorted(admins) == ["backup-1", "cyrus-1", "cyrus-2"] and len(set(admins.values())) == 3
    assert sorted(second["vault_hermes_cyrus_replication_passwords"]) == ["cyrus-1", "cyrus-2"]

    # A vault of before, with one Cyrus password for the whole estate, gets one per pair.
    old = tmp_path / "old"
    ensure_lab_vault(old, ["fanf2"], {})
    ensure_lab_vault(old, ["fanf2"], KEYED)
    upgraded = read_lab_vault(old / "vault.yml", old / "vault-password")
    assert sorted(upgraded["vault_hermes_cyrus_admin_passwords"]) == ["backup-1", "cyrus-1"]


def test_a_vault_opens_as_ansible_playbook_opens_it(tmp_path: Path) -> None:
    vault, password = ensure_lab_vault(tmp_path / "lab", ["fanf2"], KEYED)
    expected = read_lab_vault(vault, password)
    typed = password.read_text().strip()
    # The password from a file, typed (ansible-playbook strips both), or printed by an executable file.
    script = tmp_path / "password-script"
    script.write_text(f"#!/bin/sh\necho '{typed}'\n")
    script.chmod(0o700)
    for secret in (file_secret(password), typed_secret(f"{typed}\n"), file_secret(script)):
        assert read_vault(vault, secret) == expected
    # A wrong password, or no password file, is a VaultError saying so; the lab's own vault too.
    with pytest.raises(VaultError, match=r"vault\.yml: cannot be decrypted with the vault password given$"):
        read_vault(vault, typed_secret("wrong"))
    with pytest.raises(VaultError, match=r"vault password file .*nothing.* was not found"):
        file_secret(tmp_path / "nothing")
    password.write_text("wrong\n")
    with pytest.raises(VaultError, match="cannot be decrypted"):
        ensure_lab_vault(tmp_path / "lab", ["fanf2"], KEYED)
    # Not a vault at all.
    with pytest.raises(VaultError, match=r"password-script: not an ansible-vault file"):
        read_vault(script, typed_secret(typed))
