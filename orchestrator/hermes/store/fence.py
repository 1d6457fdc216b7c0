"""Fencing an old live member after a failover, so that it cannot come back as a second master.

The cyrus_store role makes Cyrus's unit skip its start while :data:`FENCE_FILE` exists
(roles/cyrus_store: ``cyrus_store_fence_file``, a ``ConditionPathExists=!`` drop-in), and
every playbook leaves the fenced member out (the inventory's ``fenced`` group). A fencer cuts
the host off and writes that file:

- :class:`PodmanFencer`, the lab: the container is stopped (its power cut) and the file
  copied into its disk while it is down;
- :class:`OperatorFencer`, a real estate: the operator has powered the host off (its BMC)
  and says so; if the host still answers, the file is written and Cyrus stopped from here.
  The runbook (docs/store.md, Failover) says how to boot it without Cyrus to write the file.

Both also reboot a host cleanly for a rolling upgrade (``reboot``): the lab restarts the
container, a real host is told to reboot and waited for until it has booted again.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Protocol

from hermes.errors import StoreError
from hermes.store.hold import ROOT
from hermes.store.runner import CommandRunner

FENCE_FILE = "/etc/cyrus-store/fenced"
BOOT_TIMEOUT = 60.0
REBOOT_TIMEOUT = 900.0  # a real store's firmware and RAID controller take minutes
_FENCE_TEXT = "Fenced by hermesctl store failover: Cyrus stays down until hermesctl store reattach.\n"


class Fencer(Protocol):
    def fence(self, host: str, unit: str) -> str:
        """Make sure ``host`` cannot run ``unit`` (Cyrus) again until it is reattached; what was done."""
        ...

    def boot(self, host: str) -> str:
        """Bring the fenced ``host`` up (its fence file keeps Cyrus down), ready for commands; what was done."""
        ...

    def reboot(self, host: str) -> str:
        """Reboot ``host`` cleanly and wait until it has booted again; what was done."""
        ...


class PodmanFencer:
    """The lab: stop the host's container, then write the fence file into it."""

    def fence(self, host: str, unit: str) -> str:
        from hermes.lab.image import podman_env

        env = podman_env()

        def podman(*argv: str) -> None:
            result = subprocess.run(["podman", *argv], capture_output=True, text=True, env=env, check=False, timeout=120)
            if result.returncode != 0:
                raise StoreError(f"{host}: podman {argv[0]} failed: {result.stderr.strip() or result.stdout.strip()}")

        podman("stop", "--time", "0", host)  # already stopped (killed): nothing to do
        with tempfile.TemporaryDirectory() as scratch:
            fence = Path(scratch) / "fenced"
            fence.write_text(_FENCE_TEXT, encoding="utf-8")
            podman("cp", str(fence), f"{host}:{FENCE_FILE}")
        return f"{host}: container stopped, {FENCE_FILE} written into it ({unit} cannot start)"

    def boot(self, host: str) -> str:
        return self._started(host, "start")

    def reboot(self, host: str) -> str:
        # podman stop's SIGTERM reaches systemd as PID 1, which shuts the services down in order.
        return self._started(host, "restart", "--time", "60")

    def _started(self, host: str, *podman: str) -> str:
        from hermes.lab.image import podman_env

        env = podman_env()

        def resolv_conf() -> Path:
            # The container's /etc/resolv.conf is this file, bind-mounted, and podman writes it
            # afresh at every start: a real host keeps the one the common role wrote.
            inspected = subprocess.run(
                ["podman", "inspect", "--format", "{{.ResolvConfPath}}", host],
                capture_output=True,
                text=True,
                env=env,
                check=True,
                timeout=60,
            )
            return Path(inspected.stdout.strip())

        try:
            kept: bytes | None = resolv_conf().read_bytes()
        except (OSError, subprocess.CalledProcessError):
            kept = None  # nothing written there yet
        subprocess.run(["podman", *podman, host], capture_output=True, text=True, env=env, check=False, timeout=180)
        if kept is not None:
            resolv_conf().write_bytes(kept)  # in place: the mount follows the file, not its name
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            state = subprocess.run(
                ["podman", "exec", host, "systemctl", "is-system-running"], capture_output=True, text=True, env=env, check=False
            )
            if state.stdout.strip() in ("running", "degraded"):
                return f"{host}: container {podman[0]}ed ({state.stdout.strip()})"
            time.sleep(1)
        raise StoreError(f"{host}: its container did not boot within {BOOT_TIMEOUT:.0f} s")


class OperatorFencer:
    """A real estate: the operator powered the host off; if it answers all the same, fence it from here."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def fence(self, host: str, unit: str) -> str:
        script = 'printf %s "$1" > "$2" && systemctl stop "$3"'
        try:
            self.runner.run(host, ["sh", "-c", script, "sh", _FENCE_TEXT, FENCE_FILE, unit], user=ROOT)
        except StoreError:
            return f"{host}: powered off by the operator (--fenced); write {FENCE_FILE} before it runs Cyrus again"
        return f"{host}: answers: {FENCE_FILE} written and {unit} stopped (and powered off by the operator)"

    def boot(self, host: str) -> str:
        try:
            self.runner.run(host, ["true"], user=ROOT)
        except StoreError as error:
            raise StoreError(f"{host} does not answer ({error}): power it on first (its fence file keeps Cyrus down)") from None
        return f"{host}: answers (powered on by the operator)"

    def reboot(self, host: str) -> str:
        # The boot id changes with every boot: the host is back when it answers with another one.
        def boot_id() -> str:
            return self.runner.run(host, ["cat", "/proc/sys/kernel/random/boot_id"], user=ROOT).strip()

        before = boot_id()
        with contextlib.suppress(StoreError):  # the connection may drop as the host goes down
            self.runner.run(host, ["systemctl", "reboot"], user=ROOT)
        deadline = time.monotonic() + REBOOT_TIMEOUT
        while time.monotonic() < deadline:
            time.sleep(5)
            try:
                if boot_id() != before:
                    return f"{host}: rebooted"
            except StoreError:
                continue
        raise StoreError(f"{host}: not back {REBOOT_TIMEOUT:.0f} s after its reboot")
