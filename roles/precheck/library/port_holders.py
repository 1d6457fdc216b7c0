#!/usr/bin/python3
"""Which of the ports a host's services need are held by something else.

For each {port, unit} asked about, a listening TCP socket on the port must be held by that
systemd unit (from an earlier deploy) or by nothing. Read from /proc rather than parsed from
ss and ps output: /proc/net/tcp and tcp6 give the listening sockets (inode, owner uid),
/proc/<pid>/fd the processes holding them, /proc/<pid>/cgroup their unit. Where no holder can
be read (a container without CAP_SYS_PTRACE cannot read other users' descriptors), the unit
must be running and the socket owned by one of its users or by root. Reads only; changes nothing.
"""

from __future__ import annotations

import pwd
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: port_holders
short_description: The ports a host's services need that something else holds
description: >-
  Returns conflicts, a list of {port, unit, held_by, message} for each port asked about that
  is listening and not held by its unit; held_by names the units, or the users, holding it.
options:
  ports:
    type: list
    elements: dict
    required: true
    description: "[{port: 25, unit: exim4.service}]"
    options:
      port: {type: int, required: true}
      unit: {type: str, required: true}
"""

# /proc/net/tcp's state column: TCP_LISTEN.
LISTEN = "0A"
PROC = Path("/proc")
CGROUPS = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Socket:
    port: int
    uid: int


def listening_sockets() -> dict[str, Socket]:
    """Socket inode -> its port and owner, IPv4 and IPv6."""
    sockets = {}
    for table in ("tcp", "tcp6"):
        path = PROC / "net" / table
        if not path.exists():  # a kernel without IPv6
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN:
                sockets[fields[9]] = Socket(port=int(fields[1].rsplit(":", 1)[1], 16), uid=int(fields[7]))
    return sockets


def cgroup_of(pid: str) -> str:
    """A process's cgroup path (the unified hierarchy's, or systemd's named one)."""
    for line in (PROC / pid / "cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" or controllers == "name=systemd":
            return path
    return ""


def visible_holders(sockets: dict[str, Socket]) -> dict[str, set[str]]:
    """Socket inode -> the units (last part of the cgroup path) of the processes we can see holding it."""
    holders: dict[str, set[str]] = defaultdict(set)
    for process in PROC.iterdir():
        if not process.name.isdigit():
            continue
        try:
            for descriptor in (process / "fd").iterdir():
                target = str(descriptor.readlink())
                inode = target[len("socket:[") : -1] if target.startswith("socket:[") else ""
                if inode in sockets:
                    holders[inode].add(cgroup_of(process.name).rstrip("/").rsplit("/", 1)[-1])
        except OSError:  # not ours to read, or the process ended meanwhile
            continue
    return holders


def unit_users(unit: str) -> set[int]:
    """The uids of the processes in the unit's cgroup (and its children); none when it is not running."""
    users: set[int] = set()
    for procs in CGROUPS.glob(f"**/{unit}/**/cgroup.procs"):
        for pid in procs.read_text().split():
            try:
                status = (PROC / pid / "status").read_text()
            except OSError:
                continue
            uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
            users.update(int(uid) for uid in uids)
    return users


def holds(unit_uids: set[int], owner: int) -> bool:
    """Whether a socket whose holder cannot be read is plausibly the running unit's: it is owned
    by one of the unit's users, or by root (a daemon that binds first, then drops to its user)."""
    return bool(unit_uids) and (owner in unit_uids or owner == 0)


def user_name(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"uid {uid}"


def conflicts(wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sockets = listening_sockets()
    holders = visible_holders(sockets)
    found = []
    for item in wanted:
        port, unit = item["port"], item["unit"]
        held_by: set[str] = set()
        for inode, socket in sockets.items():
            if socket.port != port:
                continue
            if holders.get(inode):
                held_by |= holders[inode] - {unit}
            elif not holds(unit_users(unit), socket.uid):
                held_by.add(user_name(socket.uid))
        if held_by:
            holders_text = " and ".join(sorted(held_by))
            message = f"TCP port {port} is held by {holders_text}, not by {unit}"
            found.append({"port": port, "unit": unit, "held_by": sorted(held_by), "message": message})
    return found


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "ports": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {"port": {"type": "int", "required": True}, "unit": {"type": "str", "required": True}},
            }
        },
        supports_check_mode=True,
    )
    module.exit_json(changed=False, conflicts=conflicts(module.params["ports"]))


if __name__ == "__main__":
    main()
