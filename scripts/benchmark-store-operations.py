#!/usr/bin/env python3
"""Switchovers or failovers of a store pair under load on the deployed lab: what users and mail saw.

    .venv/bin/python scripts/benchmark-store-operations.py [--operation switchover|failover]
        [--pair cyrus-1] [--rounds 3] [--json out.json]

Run as root on the machine of the lab (scripts/lab.sh brings it up and deploys it), while
hermes.lab.traffic's load runs: mail from the Internet side to a user of each pair through
every MX, an IMAP client logging in through a proxy and a POP client downloading by unique
id. A switchover round switches the pair over and back (``hermesctl store switchover``). A
failover round freezes the live member's replication (to its spare, then to the backup
server, 3 s apart), kills its container 3 s later, fails over (``hermesctl store failover``),
reattaches it (``store reattach``) and switches back. Per operation: the time the pair was
held (the command's own figure), the time each client could not log in (from its attempts:
the RTO a user saw; for a failover, from the kill), the messages queued and the time to
deliver them after the release (the slowest MX's forced run), and for a failover the
deliveries only the dead member had and how many were recovered. At the end: every accepted
message counted in its mailbox, lost or duplicated, and messages the POP client downloaded
twice (after a failover: those it took from the dead member, which come back under new UIDs).
Each round ends where it began: the estate file and its render as before.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hermes.check import probe_users
from hermes.lab.benchmark import benchmark_parser
from hermes.lab.image import podman_env
from hermes.lab.traffic import Attempt, Load, mailbox, outage
from hermes.lab.vault import read_lab_vault
from hermes.loader import LoadedEstate, load_estate
from hermes.paths import LAB_STATE, PROJECT_ROOT
from hermes.store import check as store_check
from hermes.store.check import pair_specs
from hermes.store.runner import PodmanRunner

HERMESCTL = Path(sys.executable).parent / "hermesctl"


def hermesctl(*args: str, allowed: tuple[int, ...] = (0,)) -> str:
    result = subprocess.run([str(HERMESCTL), *args], capture_output=True, text=True, check=False)
    if result.returncode not in allowed:
        command = " ".join(args)
        raise SystemExit(f"benchmark-store-operations: hermesctl {command} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result.stdout


def wait_in_sync(estate: Path) -> None:
    if not store_check.wait_in_sync(pair_specs(load_estate(estate)), PodmanRunner(), timeout=120):
        raise SystemExit("benchmark-store-operations: the pairs did not come into sync within 120 s")


def during(attempts: list[Attempt], started: float, ended: float) -> list[Attempt]:
    return [a for a in attempts if started <= a.started <= ended]


def operation(estate: Path, pair: str, load: Load) -> dict[str, Any]:
    """One switchover of ``pair``, with what the load's clients saw while it ran."""
    started = time.monotonic()
    document: dict[str, Any] = json.loads(hermesctl("store", "switchover", pair, "--lab", "--json", "--estate", str(estate)))
    ended = time.monotonic() + 5  # a client's failed attempt that began just before the end
    time.sleep(5)
    return {
        "operation": "switchover",
        "to": document["live"],
        "held_seconds": document["held_seconds"],
        "imap_out_seconds": outage(during(load.imap, started, ended)),
        "pop_out_seconds": outage(during(load.pop, started, ended)),
        "queued": document["queued_messages"],
        "drain_seconds": max((d["flush_seconds"] or 0.0 for d in document["drained"]), default=0.0),
        "steps": {s["step"]: round(s["seconds"], 2) for s in document["steps"]},
    }


def podman(*args: str) -> None:
    subprocess.run(["podman", *args], capture_output=True, text=True, env=podman_env(), check=True, timeout=120)


def failover(estate: Path, pair: str, load: Load) -> list[dict[str, Any]]:
    """One failover of ``pair`` from its killed live member, its reattach and the switchover back."""
    live = next(p.live for p in load_estate(estate).estate.services.store_pairs if p.name == pair)
    for channel in ("replica", "backup"):  # what it takes from now reaches the backup server only, then no one
        podman("exec", live, "pkill", "--signal", "STOP", "--full", f"sync_client .*-n {channel}")
        time.sleep(3)
    podman("kill", live)
    killed = time.monotonic()
    # Exit 1: some delivery is on the dead member only (or mail still queued).
    lab = ("--lab", "--json", "--estate", str(estate))
    over: dict[str, Any] = json.loads(hermesctl("store", "failover", pair, *lab, allowed=(0, 1)))
    failed_over = time.monotonic() + 5
    time.sleep(5)
    back: dict[str, Any] = json.loads(hermesctl("store", "reattach", pair, *lab))
    return [
        {
            "operation": "failover",
            "to": over["live"],
            "held_seconds": over["held_seconds"],
            "imap_out_seconds": outage(during(load.imap, killed, failed_over)),
            "pop_out_seconds": outage(during(load.pop, killed, failed_over)),
            "queued": over["queued_messages"],
            "drain_seconds": max((d["flush_seconds"] or 0.0 for d in over["drained"]), default=0.0),
            "missing": len(over["missing"]),
            "steps": {s["step"]: round(s["seconds"], 2) for s in over["steps"]},
        },
        {
            "operation": "reattach",
            "to": back["live"],
            "held_seconds": back["held_seconds"],
            "recovered": back["appended"],
            "not_recovered": len(back["not_recovered"]),
            "queued": back["queued_messages"],
            "steps": {s["step"]: round(s["seconds"], 2) for s in back["steps"]},
        },
        operation(estate, pair, load),
    ]


def rounds(loaded: LoadedEstate, estate: Path, pair: str, count: int, *, kind: str) -> dict[str, Any]:
    ca = LAB_STATE / "pki" / "ca.crt"
    state = LAB_STATE / loaded.estate.name
    passwords = dict(read_lab_vault(state / "vault.yml", state / "vault-password")["vault_hermes_user_passwords"])
    users = dict(probe_users(loaded, passwords).by_pair)
    operations = []
    wait_in_sync(estate)
    with Load(loaded, ca, users, passwords, client=users[pair]) as load:
        time.sleep(3)
        for _ in range(count):
            # Under load the pair is never exactly in sync at one instant: the next switchover's
            # own gate (at most 30 s behind) decides whether it may start.
            if kind == "failover":
                operations.extend(failover(estate, pair, load))
            else:
                operations.extend(operation(estate, pair, load) for _direction in ("over", "back"))
    time.sleep(10)  # the last messages accepted reach their mailboxes
    lost = duplicated = 0
    for user in users.values():
        copies = mailbox(loaded, ca, user, passwords[user]).copies
        lost += sum(copies.get(t, 0) == 0 for t in load.accepted.get(user, []))
        duplicated += sum(copies.get(t, 0) > 1 for t in load.accepted.get(user, []))
    return {
        "pair": pair,
        "kind": kind,
        "operations": operations,
        "accepted": sum(len(tokens) for tokens in load.accepted.values()),
        "refused_at_smtp": len(load.refused),
        "lost": lost,
        "duplicated": duplicated,
        "pop_downloaded_twice": sum(n > 1 for n in load.downloaded.values()),
    }


def summary(result: dict[str, Any]) -> str:
    def spread(kind: str, key: str) -> str:
        values = [o[key] for o in result["operations"] if o["operation"] == kind]
        return f"median {statistics.median(values):.1f} s, {min(values):.1f}-{max(values):.1f}"

    lines = [f"{len(result['operations'])} operations on {result['pair']} under load:"]
    for kind in dict.fromkeys(o["operation"] for o in result["operations"]):
        ops = [o for o in result["operations"] if o["operation"] == kind]
        lines.append(f"  {kind} ({len(ops)}): held (logins refused, mail queued) {spread(kind, 'held_seconds')}")
        if "imap_out_seconds" in ops[0]:
            lines.append(
                f"    IMAP client out: {spread(kind, 'imap_out_seconds')}; POP client out: {spread(kind, 'pop_out_seconds')}"
            )
        if "drain_seconds" in ops[0]:
            lines.append(f"    queued: {[o['queued'] for o in ops]}, delivered in {spread(kind, 'drain_seconds')}")
        if kind == "failover":
            lines.append(f"    on the dead member only: {[o['missing'] for o in ops]}")
        if kind == "reattach":
            lines.append(f"    recovered: {[o['recovered'] for o in ops]}, not recovered: {[o['not_recovered'] for o in ops]}")
        lines.append(f"    flip: {statistics.median(o['steps']['flip'] for o in ops):.1f} s median")
    lines.append(
        f"  {result['accepted']} messages accepted, {result['refused_at_smtp']} refused at SMTP, "
        f"{result['lost']} lost, {result['duplicated']} duplicated, "
        f"{result['pop_downloaded_twice']} downloaded twice by the POP client"
    )
    return "\n".join(lines)


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--estate", type=Path, default=PROJECT_ROOT / "inventory" / "estates" / "lab.yml")
    parser.add_argument("--pair", help="the store pair (default: the estate's first)")
    parser.add_argument("--operation", choices=("switchover", "failover"), default="switchover")
    parser.add_argument(
        "--rounds", type=int, default=3, help="switchovers there and back, or failovers, reattaches and switches back"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("benchmark-store-operations: run as root (the lab's containers are root's)")
    estate: Path = args.estate.resolve()
    loaded = load_estate(estate)
    pair = args.pair or loaded.estate.services.store_pairs[0].name
    original = estate.read_bytes()
    result = rounds(loaded, estate, pair, args.rounds, kind=args.operation)
    print(summary(result))
    if estate.read_bytes() != original:  # each round switches back: the file is as it was
        print(f"benchmark-store-operations: {estate} differs from before the run", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
