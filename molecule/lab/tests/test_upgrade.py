"""A rolling upgrade of every store pair under load, stopped half-way and resumed, on the
deployed lab estate.

While mail flows through both MX hosts to a user on each pair and IMAP and POP clients of the
second pair's user work through a proxy, `hermesctl store upgrade --reboot --switch-back` runs
with the second pair's spare down (its Cyrus stopped): the first pair is upgraded (each member
upgraded and rebooted while it is the spare, a switchover between, a switchover back) and the
run stops at the second pair's gate, which waits its budget first. With that Cyrus started
again, the same command resumes: the first pair is skipped, the second upgraded. Afterwards
every accepted message is in its mailbox exactly once, no UID, POP unique id or flag changed,
the POP client downloaded nothing twice, each member was rebooted once, and the estate file
is as it was. The figures are printed for docs/store.md.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from lablib import (
    CA,
    HERMESCTL,
    LOADED,
    ORIGINAL,
    OTHER,
    PAIR,
    assert_each_accepted_once,
    assert_uids_kept,
    flag_one,
    hermesctl,
    mailbox,
    wait_in_sync,
)

from hermes.lab.image import podman_env
from hermes.lab.traffic import Attempt, Load

OPTIONS = ("--lab", "--reboot", "--switch-back", "--retries", "20", "--delay", "3", "--json")
MEMBERS = (PAIR.master, PAIR.replica, OTHER.master, OTHER.replica)


def on(host: str, *argv: str) -> str:
    command = ["podman", "exec", host, *argv]
    return subprocess.run(command, capture_output=True, text=True, env=podman_env(), timeout=120, check=False).stdout.strip()


def longest_outage(attempts: Sequence[Attempt]) -> float:
    """The longest time, over a run with several switchovers, from a failed attempt to the next good one."""
    longest, since = 0.0, None
    for attempt in attempts:
        if not attempt.ok and since is None:
            since = attempt.started
        elif attempt.ok and since is not None:
            longest, since = max(longest, attempt.started - since), None
    return longest


def booted_at(host: str) -> str:
    """When the host's systemd started (a reboot changes it)."""
    return on(host, "systemctl", "show", "--property", "UserspaceTimestampMonotonic", "--value")


@pytest.fixture(scope="module")
def upgraded(estate_file: Path, users: dict[str, str], passwords: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The rolling upgrade under load: a first run stopped by the second pair's spare, and the resumed one."""
    wait_in_sync(estate_file)
    seen: dict[str, Any] = {"booted": {h: booted_at(h) for h in MEMBERS}}
    seen["before"] = {pair: mailbox(u, passwords[u]) for pair, u in users.items()}
    seen["flagged"] = flag_one(users[PAIR.name], passwords[users[PAIR.name]])
    wait_in_sync(estate_file)
    command = [str(HERMESCTL), "store", "upgrade", *OPTIONS, "--estate", str(estate_file)]
    # The clients are the second pair's user's: the resumed run's switchovers are theirs.
    with Load(LOADED, CA, users, passwords, client=users[OTHER.name]) as load:
        time.sleep(3)
        on(OTHER.replica, "systemctl", "stop", "cyrus-imapd")
        seen["stopped"] = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        seen["estate_when_stopped"] = estate_file.read_bytes()
        on(OTHER.replica, "systemctl", "start", "cyrus-imapd")
        seen["resuming"] = time.monotonic()
        seen["resumed"] = json.loads(hermesctl("store", "upgrade", *OPTIONS, "--estate", str(estate_file)))
        time.sleep(3)
    seen["load"] = load
    seen["after"] = {pair: mailbox(u, passwords[u]) for pair, u in users.items()}
    seen["rebooted"] = {h: booted_at(h) for h in MEMBERS}
    wait_in_sync(estate_file)
    yield seen


def test_the_run_stopped_at_a_gate_and_resumed_where_it_stopped(upgraded: dict[str, Any]) -> None:
    stopped = upgraded["stopped"]
    assert stopped.returncode == 1, stopped.stderr[-2000:]
    assert f"{OTHER.name}: gate: Cyrus on {OTHER.replica} is inactive after 20 checks 3 s apart" in stopped.stderr
    assert upgraded["estate_when_stopped"] == ORIGINAL  # the first pair done and switched back
    resumed = upgraded["resumed"]
    assert resumed["resumed"] and resumed["skipped"] == [PAIR.name]
    assert [s["step"] for s in resumed["steps"]] == [
        f"{OTHER.name}: {step}"
        for step in (
            "gate",
            f"upgrade {OTHER.replica}",
            "caught up",
            "switchover",
            f"upgrade {OTHER.master}",
            "caught up",
            "switch back",
            "gate after",
        )
    ]
    # Each member was rebooted (--reboot) while it was its pair's spare.
    assert all(upgraded["rebooted"][h] != upgraded["booted"][h] for h in MEMBERS), upgraded["rebooted"]


def test_every_accepted_message_is_there_once_with_its_uid_and_flag(upgraded: dict[str, Any], users: dict[str, str]) -> None:
    load: Load = upgraded["load"]
    assert load.refused == []
    assert_each_accepted_once(load, upgraded["after"], users)
    assert_uids_kept(upgraded["before"], upgraded["after"])
    assert all(upgraded["before"][pair].uidls <= upgraded["after"][pair].uidls for pair in users)
    assert upgraded["flagged"] in upgraded["after"][PAIR.name].flagged
    assert load.downloaded and max(load.downloaded.values()) == 1, {s: n for s, n in load.downloaded.items() if n > 1}


def test_clients_were_out_no_longer_than_a_switchover_held_the_pair(upgraded: dict[str, Any]) -> None:
    load: Load = upgraded["load"]
    imap, pop = ([a for a in attempts if a.started >= upgraded["resuming"]] for attempts in (load.imap, load.pop))
    switchovers = upgraded["resumed"]["switchovers"]
    held = [s["held_seconds"] for s in switchovers]
    print(
        f"\nrolling upgrade (resumed run, {OTHER.name}): held {[round(h, 1) for h in held]} s, "
        f"queued {[s['queued_messages'] for s in switchovers]}; "
        f"steps {[(s['step'], round(s['seconds'], 1)) for s in upgraded['resumed']['steps']]}; "
        f"IMAP out at most {longest_outage(imap):.1f} s, POP {longest_outage(pop):.1f} s at a time"
    )
    # Out of service no longer than a switchover held the pair, give or take one failed attempt
    # (a held login waits 3 s for its answer). The 10 s target is measured by
    # scripts/benchmark-store-operations.py, not asserted here.
    assert len(switchovers) == 2
    for client in (imap, pop):
        assert client and client[-1].ok and longest_outage(client) <= max(held) + 5
