"""The lab vault: generated secrets, encrypted at rest, stable across runs."""

from __future__ import annotations

from pathlib import Path

from hermes.lab.vault import ensure_lab_vault, read_lab_vault
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
