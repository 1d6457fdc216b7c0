"""The lab: an estate's hosts as systemd containers on a podman network of the estate's own.

``lab_plan`` is pure (estate -> what should exist); ``up``, ``down`` and ``status``
are the only functions that touch podman. Every container and network carries the
label ``org.hermes.estate=<name>``, so ``down`` removes exactly what ``up`` made and
never touches anything else.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hermes.errors import LabError
from hermes.lab.image import podman_env, podman_run_args
from hermes.lab.ssh import HOST_KEY
from hermes.loader import LoadedEstate

LABEL = "org.hermes.estate"


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    # Where the estate mounts the host's RAID data volume: the lab gives it a volume of its own
    # there, so the data is on another file system than the root, as on the real host.
    data_mount: str | None = None


@dataclass(frozen=True)
class LabPlan:
    estate: str
    network: str
    subnet: str
    gateway: str
    hosts: tuple[LabHost, ...]


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    container: str  # running, exited, ..., or absent
    systemd: str  # what systemctl is-system-running says, or "-"


def lab_plan(loaded: LoadedEstate) -> LabPlan:
    """The network and containers the lab needs for an estate (one network, its first)."""
    estate = loaded.estate
    if len(estate.networks) != 1:
        raise LabError(f"the lab runs estates with exactly one network; {estate.name} has {len(estate.networks)}")
    network = estate.networks[0]
    return LabPlan(
        estate=estate.name,
        network=f"hermes-{estate.name}",
        subnet=str(network.subnet),
        gateway=str(network.router),
        hosts=tuple(
            LabHost(h.name, str(loaded.addresses[h.name]), h.storage.mount if h.storage is not None else None)
            for h in sorted(estate.hosts, key=lambda h: h.name)
        ),
    )


def _podman(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(["podman", *args], env=podman_env(), input=stdin, text=True, capture_output=True, check=False)
    except FileNotFoundError:
        raise LabError("podman is not installed (the README's commands install it)") from None
    if check and result.returncode != 0:
        raise LabError(f"podman {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result


def _inspect(kind: str, name: str) -> dict[str, Any] | None:
    result = _podman(kind, "inspect", name, check=False)
    if result.returncode != 0:
        return None
    data = json.loads(result.stdout)
    return data[0] if data else None


def _labels(info: dict[str, Any], kind: str) -> dict[str, str]:
    if kind == "network":
        labels = info.get("labels") or {}
    else:
        config = info.get("Config") or {}
        labels = (config.get("Labels") if isinstance(config, dict) else None) or {}
    return dict(labels) if isinstance(labels, dict) else {}


def _ensure_network(plan: LabPlan) -> str | None:
    info = _inspect("network", plan.network)
    if info is not None:
        subnets = [s.get("subnet") for s in info.get("subnets", []) or [] if isinstance(s, dict)]
        if _labels(info, "network").get(LABEL) != plan.estate or subnets != [plan.subnet]:
            raise LabError(f"podman network {plan.network} exists but is not the lab's {plan.subnet}; remove it first")
        return None
    _podman(
        "network",
        "create",
        f"--label={LABEL}={plan.estate}",
        f"--subnet={plan.subnet}",
        f"--gateway={plan.gateway}",
        plan.network,
    )
    return f"network {plan.network} ({plan.subnet}) created"


def _container_address(info: dict[str, Any], network: str) -> str | None:
    settings = info.get("NetworkSettings") or {}
    networks = settings.get("Networks") if isinstance(settings, dict) else None
    entry = networks.get(network) if isinstance(networks, dict) else None
    return entry.get("IPAddress") if isinstance(entry, dict) else None


def _mounts(info: dict[str, Any]) -> set[str]:
    return {m.get("Destination", "") for m in info.get("Mounts") or [] if isinstance(m, dict)}


def _wait_for_systemd(name: str) -> str:
    # --wait returns once boot has finished: running, or degraded if a unit failed.
    result = _podman("exec", name, "timeout", "60", "systemctl", "is-system-running", "--wait", check=False)
    return result.stdout.strip() or "unknown"


def up(plan: LabPlan, image: str, say: Callable[[str], None]) -> list[str]:
    """Bring the lab to the plan; return what changed (nothing on a second run)."""
    changes = [c for c in [_ensure_network(plan)] if c]
    for host in plan.hosts:
        info = _inspect("container", host.name)
        if info is not None:
            if _labels(info, "container").get(LABEL) != plan.estate:
                raise LabError(f"a container named {host.name} exists and is not part of the lab; remove it first")
            same = (
                info.get("ImageName") == image
                and _container_address(info, plan.network) == host.address
                and (host.data_mount is None or host.data_mount in _mounts(info))
            )
            running = isinstance(info.get("State"), dict) and info["State"].get("Running")
            if same and running:
                continue
            if same:
                say(f"starting {host.name}")
                _podman("start", host.name)
                changes.append(f"{host.name} started")
                continue
            say(f"replacing {host.name}: its image, address or data volume is not the plan's")
            _podman("rm", "--force", "--volumes", "--time=10", host.name)
        say(f"creating {host.name} at {host.address}")
        _podman(
            "run",
            "--detach",
            f"--name={host.name}",
            f"--hostname={host.name}",
            f"--label={LABEL}={plan.estate}",
            f"--network={plan.network}",
            f"--ip={host.address}",
            # An anonymous volume: removed with the container (rm --volumes).
            *([f"--volume={host.data_mount}"] if host.data_mount else []),
            *podman_run_args(),
            image,
            "/sbin/init",
        )
        changes.append(f"{host.name} created at {host.address}")
    for host in plan.hosts:
        state = _wait_for_systemd(host.name)
        if state not in ("running", "degraded"):
            raise LabError(f"{host.name}: systemd did not finish booting (is-system-running: {state})")
    return changes


def grant_ssh(plan: LabPlan, public_key: str) -> dict[tuple[str, str], str]:
    """Make ``public_key`` root's only authorized key on every host; return each host's SSH
    host key by (name, address), for the lab's known_hosts (:mod:`hermes.lab.ssh`)."""
    host_keys = {}
    for host in plan.hosts:
        _podman(
            "exec",
            "--interactive",
            host.name,
            "sh",
            "-c",
            "umask 077 && mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys",
            stdin=f"{public_key}\n",
        )
        found = _podman("exec", host.name, "cat", HOST_KEY, check=False)
        if found.returncode != 0 or len(found.stdout.split()) < 2:
            raise LabError(f"{host.name}: sshd made no host key ({HOST_KEY}); see journalctl -u ssh in the container")
        host_keys[(host.name, host.address)] = found.stdout.strip()
    return host_keys


def down(plan: LabPlan) -> list[str]:
    """Remove every container and the network the lab made for this estate."""
    listed = _podman("ps", "--all", f"--filter=label={LABEL}={plan.estate}", "--format={{.Names}}").stdout.split()
    removed = []
    for name in sorted(listed):
        _podman("rm", "--force", "--volumes", "--time=10", name)
        removed.append(f"{name} removed")
    info = _inspect("network", plan.network)
    if info is not None and _labels(info, "network").get(LABEL) == plan.estate:
        _podman("network", "rm", plan.network)
        removed.append(f"network {plan.network} removed")
    return removed


def status(plan: LabPlan) -> list[HostStatus]:
    rows = []
    for host in plan.hosts:
        info = _inspect("container", host.name)
        state = info.get("State") if info else None
        container = str(state.get("Status", "unknown")) if isinstance(state, dict) else "absent"
        systemd = "-"
        if container == "running":
            systemd = _podman("exec", host.name, "systemctl", "is-system-running", check=False).stdout.strip() or "unknown"
        rows.append(HostStatus(host.name, host.address, container, systemd))
    return rows
