"""The lab: an estate's hosts as systemd containers, one podman network per estate network,
and the lab's Internet side (:mod:`hermes.lab.internet`), on a network of its own that every
estate's lab shares.

``lab_plan`` is pure (estate -> what should exist); ``up``, ``down`` and ``status``
are the only functions that touch podman. Every container and network of an estate carries
the label ``org.hermes.estate=<name>``, so ``down`` removes exactly what ``up`` made and
never touches anything else; the Internet side carries ``org.hermes.lab=internet`` and goes
with the last estate's lab.

podman masquerades whatever leaves a network; the lab's networks talk to each other as routed
networks do instead, each seeing the other's own addresses (a store's LMTP allows the hubs by
address): ``up`` adds a NAT exemption per pair of lab networks, as this machine's iptables
rules commented ``hermes-lab <estate>``, and ``down`` removes them. What this machine itself
sends into the lab still comes from a network's gateway address.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from itertools import permutations
from typing import Any

import netaddr

from hermes.errors import LabError
from hermes.lab import internet
from hermes.lab.image import podman_run_args
from hermes.lab.podman import podman as _podman
from hermes.lab.ssh import HOST_KEY
from hermes.loader import LoadedEstate

LABEL = "org.hermes.estate"
INTERNET_LABEL = ("org.hermes.lab", "internet")


@dataclass(frozen=True)
class LabNetwork:
    name: str  # podman's
    subnet: str
    gateway: str


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    network: str  # the podman network's name
    # Where the estate mounts the host's RAID data volume: the lab gives it a volume of its own
    # there, so the data is on another file system than the root, as on the real host.
    data_mount: str | None = None


@dataclass(frozen=True)
class LabPlan:
    estate: str
    networks: tuple[LabNetwork, ...]
    hosts: tuple[LabHost, ...]
    internet_network: LabNetwork
    internet: tuple[LabHost, ...]

    @property
    def routes(self) -> list[tuple[str, str]]:
        """(source, destination) subnet pairs the lab routes without address translation: the
        estate's networks and the Internet side, each way (one estate's lab never reaches another's)."""
        subnets = [netaddr.IPNetwork(n.subnet) for n in (*self.networks, self.internet_network)]
        return [(str(a), str(b)) for a, b in permutations(subnets, 2) if a.version == b.version]


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    container: str  # running, exited, ..., or absent
    systemd: str  # what systemctl is-system-running says, or "-"


def lab_plan(loaded: LoadedEstate) -> LabPlan:
    """The networks and containers the lab needs for an estate."""
    estate = loaded.estate
    podman_name = {n.name: f"hermes-{estate.name}-{n.name}" for n in estate.networks}
    networks = [LabNetwork(podman_name[n.name], str(n.subnet), str(n.router)) for n in estate.networks]
    for network in estate.networks:
        if network.subnet.version == internet.SUBNET.version and (
            network.subnet in internet.SUBNET or internet.SUBNET in network.subnet
        ):
            raise LabError(f"network {network.name}: {network.subnet} overlaps the lab's Internet side ({internet.SUBNET})")
    clashes = sorted({h.name for h in estate.hosts} & {internet.CLIENT[0], internet.MX[0]})
    if clashes:
        raise LabError(f"host {', '.join(clashes)}: a name the lab's Internet side uses; rename it to bring the estate up")
    outside = LabNetwork(internet.NETWORK, str(internet.SUBNET), internet.GATEWAY)
    return LabPlan(
        estate=estate.name,
        networks=tuple(networks),
        hosts=tuple(
            LabHost(
                h.name,
                str(loaded.addresses[h.name]),
                podman_name[h.network],
                h.storage.mount if h.storage is not None else None,
            )
            for h in sorted(estate.hosts, key=lambda h: h.name)
        ),
        internet_network=outside,
        internet=tuple(LabHost(name, address, outside.name) for name, address in (internet.CLIENT, internet.MX)),
    )


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


def _ensure_network(owner: tuple[str, str], network: LabNetwork) -> str | None:
    info = _inspect("network", network.name)
    if info is not None:
        subnets = [s.get("subnet") for s in info.get("subnets", []) or [] if isinstance(s, dict)]
        if _labels(info, "network").get(owner[0]) != owner[1] or subnets != [network.subnet]:
            raise LabError(f"podman network {network.name} exists but is not the lab's {network.subnet}; remove it first")
        return None
    _podman(
        "network",
        "create",
        f"--label={owner[0]}={owner[1]}",
        f"--subnet={network.subnet}",
        f"--gateway={network.gateway}",
        network.name,
    )
    return f"network {network.name} ({network.subnet}) created"


def _route_rule(estate: str, source: str, destination: str) -> list[str]:
    """The iptables rule exempting one route from podman's masquerading (inserted first)."""
    return ["POSTROUTING", "-s", source, "-d", destination, "-m", "comment", "--comment", f"hermes-lab {estate}", "-j", "ACCEPT"]


def _iptables(source: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = "ip6tables" if netaddr.IPNetwork(source).version == 6 else "iptables"
    try:
        return subprocess.run([command, "-t", "nat", *args], text=True, capture_output=True, check=False)
    except FileNotFoundError:
        raise LabError(f"{command} is not installed (netavark, podman's network stack, needs it)") from None


def _ensure_routes(plan: LabPlan) -> list[str]:
    added = []
    for source, destination in plan.routes:
        rule = _route_rule(plan.estate, source, destination)
        if _iptables(source, "-C", *rule).returncode == 0:
            continue
        result = _iptables(source, "-I", *rule)
        if result.returncode != 0:
            raise LabError(f"cannot route {source} to {destination} without NAT: {result.stderr.strip()}")
        added.append(f"route {source} -> {destination} without NAT")
    return added


def _remove_routes(plan: LabPlan) -> list[str]:
    removed = []
    for source, destination in plan.routes:
        rule = _route_rule(plan.estate, source, destination)
        # A rule added twice (by hand, say) is removed whole.
        while _iptables(source, "-C", *rule).returncode == 0:
            _iptables(source, "-D", *rule)
            removed.append(f"route {source} -> {destination} removed")
    return removed


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


def _remove(name: str) -> None:
    """Remove a container and its anonymous volumes. podman's forced removal can lose a race with
    the container's own exit ("container does not exist" from runc's kill, seen in CI): then the
    removal is asked again, once, and only a container still there is an error."""
    first = _podman("rm", "--force", "--volumes", "--time=10", name, check=False)
    if first.returncode != 0 and _inspect("container", name) is not None:
        _podman("rm", "--force", "--volumes", "--time=10", name)


def _ensure_host(owner: tuple[str, str], host: LabHost, image: str, say: Callable[[str], None]) -> str | None:
    info = _inspect("container", host.name)
    if info is not None:
        if _labels(info, "container").get(owner[0]) != owner[1]:
            raise LabError(f"a container named {host.name} exists and is not part of the lab; remove it first")
        same = (
            info.get("ImageName") == image
            and _container_address(info, host.network) == host.address
            and (host.data_mount is None or host.data_mount in _mounts(info))
        )
        running = isinstance(info.get("State"), dict) and info["State"].get("Running")
        if same and running:
            return None
        if same:
            say(f"starting {host.name}")
            _podman("start", host.name)
            return f"{host.name} started"
        say(f"replacing {host.name}: its image, address or data volume is not the plan's")
        _remove(host.name)
    say(f"creating {host.name} at {host.address}")
    _podman(
        "run",
        "--detach",
        f"--name={host.name}",
        f"--hostname={host.name}",
        f"--label={owner[0]}={owner[1]}",
        f"--network={host.network}",
        f"--ip={host.address}",
        # An anonymous volume: removed with the container (rm --volumes).
        *([f"--volume={host.data_mount}"] if host.data_mount else []),
        *podman_run_args(),
        image,
        "/sbin/init",
    )
    return f"{host.name} created at {host.address}"


def up(plan: LabPlan, loaded: LoadedEstate, image: str, say: Callable[[str], None]) -> list[str]:
    """Bring the lab to the plan; return what changed (nothing on a second run)."""
    estate = (LABEL, plan.estate)
    networks = [(INTERNET_LABEL, plan.internet_network), *((estate, n) for n in plan.networks)]
    changes = [c for owner, network in networks if (c := _ensure_network(owner, network))]
    changes += _ensure_routes(plan)
    outside = internet.ensure_internet_image(image, say)
    # The client is a plain host; only the MX runs the Internet's services.
    hosts = [
        *((INTERNET_LABEL, h, outside if h.name == internet.MX[0] else image) for h in plan.internet),
        *((estate, h, image) for h in plan.hosts),
    ]
    for owner, host, host_image in hosts:
        if change := _ensure_host(owner, host, host_image, say):
            changes.append(change)
    for host in (*plan.hosts, *plan.internet):
        state = _wait_for_systemd(host.name)
        if state not in ("running", "degraded"):
            raise LabError(f"{host.name}: systemd did not finish booting (is-system-running: {state})")
    return changes + internet.configure(loaded)


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
        _remove(name)
        removed.append(f"{name} removed")
    removed += _remove_routes(plan)
    for network in plan.networks:
        info = _inspect("network", network.name)
        if info is not None and _labels(info, "network").get(LABEL) == plan.estate:
            _podman("network", "rm", network.name)
            removed.append(f"network {network.name} removed")
    removed += internet.forget(plan.estate)
    # The Internet side goes with the last estate's lab.
    if not _podman("ps", "--all", f"--filter=label={LABEL}", "--format={{.Names}}").stdout.split():
        key, value = INTERNET_LABEL
        for name in _podman("ps", "--all", f"--filter=label={key}={value}", "--format={{.Names}}").stdout.split():
            _remove(name)
            removed.append(f"{name} removed")
        info = _inspect("network", plan.internet_network.name)
        if info is not None and _labels(info, "network").get(key) == value:
            _podman("network", "rm", plan.internet_network.name)
            removed.append(f"network {plan.internet_network.name} removed")
    return removed


def status(plan: LabPlan) -> list[HostStatus]:
    rows = []
    for host in (*plan.hosts, *plan.internet):
        info = _inspect("container", host.name)
        state = info.get("State") if info else None
        container = str(state.get("Status", "unknown")) if isinstance(state, dict) else "absent"
        systemd = "-"
        if container == "running":
            systemd = _podman("exec", host.name, "systemctl", "is-system-running", check=False).stdout.strip() or "unknown"
        rows.append(HostStatus(host.name, host.address, container, systemd))
    return rows
