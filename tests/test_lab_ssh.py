"""The lab's SSH files: the controller's key made once and kept, known_hosts lines by name and address."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from hermes.lab.ssh import ensure_controller_key, known_hosts, lab_ssh


def test_controller_key_is_made_once_private_and_readable_by_ssh(tmp_path: Path) -> None:
    ssh = lab_ssh(tmp_path / "lab")
    public = ensure_controller_key(ssh, "hermes-lab-lab")
    assert stat.S_IMODE(ssh.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(ssh.key.parent.stat().st_mode) == 0o700
    # OpenSSH itself derives the same public key from the private one.
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(ssh.key)], capture_output=True, text=True, check=True).stdout
    assert public.split()[:2] == derived.split()[:2] and public.endswith(" hermes-lab-lab")
    # A second lab up keeps the key the hosts already trust; a missing half makes a new pair.
    assert ensure_controller_key(ssh, "hermes-lab-lab") == public
    ssh.public_key.unlink()
    assert ensure_controller_key(ssh, "hermes-lab-lab") != public


def test_known_hosts_names_each_host_by_name_and_address() -> None:
    keys = {
        ("store-b", "10.0.0.12"): "ssh-ed25519 BBBB root@store-b",
        ("hub", "10.0.0.2"): "ssh-ed25519 AAAA root@hub",
    }
    assert known_hosts(keys) == "hub,10.0.0.2 ssh-ed25519 AAAA\nstore-b,10.0.0.12 ssh-ed25519 BBBB\n"
