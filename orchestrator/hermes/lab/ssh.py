"""How Ansible reaches the lab's hosts: SSH as root with host-key checking, as on real hosts.

Chosen by measurement (docs/lab.md): Ansible's podman connection cannot pipeline and copies
every module into the container with ``podman cp`` before running it, so a no-op deploy of the
9-host lab took 5-7 minutes; over SSH (with Mitogen's strategy, :mod:`hermes.deploy`) it takes
under one, and the lab exercises the connection a real estate uses.

Per estate, under ``.lab/<estate>/ssh/`` (git-ignored):

* ``controller.key`` (and ``controller.key.pub``): the controller's key, made once; ``lab up``
  installs the public key as root's only authorized key on every host.
* ``known_hosts``: each host's ed25519 key under its name and address, read from the
  container at ``lab up``. The base image bakes no host key: each container makes its own at
  first boot, so no two hosts share one and a replaced container is noticed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

# Every lab container's sshd makes this key at first boot (ssh-keygen -A).
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"


@dataclass(frozen=True)
class LabSsh:
    """The controller's private key and the lab's known_hosts file for one estate."""

    key: Path
    known_hosts: Path

    @property
    def public_key(self) -> Path:
        return self.key.with_name(self.key.name + ".pub")


def lab_ssh(state: Path) -> LabSsh:
    """The SSH files of the lab whose state directory is ``state`` (``.lab/<estate>``)."""
    return LabSsh(state / "ssh" / "controller.key", state / "ssh" / "known_hosts")


def ensure_controller_key(ssh: LabSsh, comment: str) -> str:
    """Make the controller's key pair unless it exists; return the public key's line."""
    if not (ssh.key.exists() and ssh.public_key.exists()):
        ssh.key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = ed25519.Ed25519PrivateKey.generate()
        ssh.key.unlink(missing_ok=True)
        ssh.key.touch(mode=0o600)
        ssh.key.write_bytes(
            private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        )
        public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        ssh.public_key.write_text(f"{public.decode()} {comment}\n")
    return ssh.public_key.read_text().strip()


def known_hosts(host_keys: Mapping[tuple[str, str], str]) -> str:
    """known_hosts lines for ``{(name, address): "ssh-ed25519 AAAA..."}``, sorted by name."""
    return "".join(f"{name},{address} {key.split()[0]} {key.split()[1]}\n" for (name, address), key in sorted(host_keys.items()))
