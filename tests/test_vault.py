"""The lab vault: generated secrets, encrypted at rest, stable across runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermes.errors import VaultError
from hermes.lab.vault import ensure_lab_vault, file_secret, read_lab_vault, read_vault, typed_secret
from hermes.render.inventory import SECRETS


def test_lab_vault_is_encrypted_complete_and_stable(tmp_path: Path) -> None:
    vault, password = ensure_lab_vault(tmp_path / "lab", ["fanf2", "dpc22"])
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    assert oct(password.stat().st_mode & 0o777) == "0o600"
    first = read_lab_vault(vault, password)
    assert set(first) == {f"vault_hermes_{name}" for name in SECRETS}
    assert set(first["vault_hermes_user_passwords"]) == {"fanf2", "dpc22"}
    for value in first["vault_hermes_user_passwords"].values():
        assert value not in vault.read_text()

    before = vault.read_bytes()
    ensure_lab_vault(tmp_path / "lab", ["fanf2", "dpc22"])
    assert vault.read_bytes() == before

    ensure_lab_vault(tmp_path / "lab", ["fanf2", "dpc22", "ph10"])
    second = read_lab_vault(vault, password)
    assert second["vault_hermes_user_passwords"]["fanf2"] == first["vault_hermes_user_passwords"]["fanf2"]
    assert "ph10" in second["vault_hermes_user_passwords"]


def test_a_vault_opens_as_ansible_playbook_opens_it(tmp_path: Path) -> None:
    vault, password = ensure_lab_vault(tmp_path / "lab", ["fanf2"])
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
        ensure_lab_vault(tmp_path / "lab", ["fanf2"])
    # Not a vault at all.
    with pytest.raises(VaultError, match=r"password-script: not an ansible-vault file"):
        read_vault(script, typed_secret(typed))
