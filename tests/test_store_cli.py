"""`hermesctl store status` through Typer's runner, with the hosts replaced by canned answers.

The sub-app is driven on its own (the main CLI registers it as `store`); the boundary is
the command runner, so the tests assert exactly which hosts were asked what.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hermes.store import SshRunner, StoreError
from hermes.store import cli as store_cli
from hermes.store.examine import SNAPSHOT_COMMAND
from tests.conftest import WriteEstate

DATA = Path(__file__).parent / "data" / "store"
LIVE = (DATA / "snapshot-live.txt").read_text()
RECEIVER = (DATA / "snapshot-receiver.txt").read_text()
IN_SYNC_LIVE = LIVE.replace("replica/log-4242 19 1795612459.3229138650\n", "")

runner = CliRunner()


@pytest.fixture
def lab(write_estate: WriteEstate, lab_data: dict[str, Any]) -> str:
    """The lab with its first pair only: the canned snapshots are of cyrus-1 holding every user."""
    return str(
        write_estate(
            {
                "hosts": [h for h in lab_data["hosts"] if not h["name"].startswith("store-2")],
                "services.store_pairs": lab_data["services"]["store_pairs"][:1],
                "placement": {"letters": {"a-z": "cyrus-1"}},
            }
        )
    )


class Canned:
    """Stands in for PodmanRunner/SshRunner: canned answers per host, calls recorded."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def run(self, host: str, argv: tuple[str, ...], **_: object) -> str:
        self.calls.append((host, tuple(argv)))
        if host not in self.answers:
            raise StoreError(f"{host}: podman exited 125: no such container")
        return self.answers[host]


def _use(monkeypatch: pytest.MonkeyPatch, answers: dict[str, str]) -> Canned:
    canned = Canned(answers)
    monkeypatch.setattr(store_cli, "PodmanRunner", lambda: canned)
    return canned


def test_status_in_sync_as_json(monkeypatch: pytest.MonkeyPatch, lab: str) -> None:
    # store-1b and backup-1 hold exactly what store-1a holds.
    same = IN_SYNC_LIVE.replace("replica/log 0 1795612459.3196064810\n", "")
    canned = _use(monkeypatch, {"store-1a": IN_SYNC_LIVE, "store-1b": same, "backup-1": same})
    result = runner.invoke(store_cli.store_app, ["status", "--estate", lab, "--lab", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["in_sync"] is True
    [pair] = document["pairs"]
    assert (pair["pair"], pair["live"]) == ("cyrus-1", "store-1a")
    assert [(c["channel"], c["target"], c["caught_up"], c["lag_seconds"]) for c in pair["channels"]] == [
        ("replica", "store-1b", True, 0.0),
        ("backup", "backup-1", True, 0.0),
    ]
    assert pair["channels"][0]["mailboxes"][0]["source"]["unique_id"] == "hbgncp2e1bvxch6lve968p2z"
    assert sorted(host for host, _ in canned.calls) == ["backup-1", "store-1a", "store-1b"]
    assert {argv for _, argv in canned.calls} == {SNAPSHOT_COMMAND}


def test_status_behind_shows_the_table_and_exits_1(monkeypatch: pytest.MonkeyPatch, lab: str) -> None:
    _use(monkeypatch, {"store-1a": LIVE, "store-1b": RECEIVER, "backup-1": RECEIVER})
    result = runner.invoke(store_cli.store_app, ["status", "--estate", lab, "--lab"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output  # README: 1 is a store pair out of sync
    assert "Pair cyrus-1 (live store-1a): not in sync" in result.stdout
    # The spare must hold exactly the live member's mailboxes (dave's is extra there); the
    # backup server also holds other pairs' users, so only this pair's count.
    assert "replica → store-1b: 1 pending sync log(s), 5/7 mailboxes agree, lag 58.0 s" in result.stdout
    assert "backup → backup-1: caught up, 5/6 mailboxes agree, lag 58.0 s" in result.stdout
    assert "8 / 7" in result.stdout  # last UID, live / receiver
    # --problems keeps only the mailboxes that disagree.
    problems = runner.invoke(store_cli.store_app, ["status", "--estate", lab, "--lab", "--problems"], env={"COLUMNS": "200"})
    assert "user.alice.Work" in result.stdout and "user.alice.Work" not in problems.stdout
    assert "differ" in problems.stdout


def test_unreachable_host_is_one_red_line(monkeypatch: pytest.MonkeyPatch, lab: str) -> None:
    _use(monkeypatch, {"store-1a": LIVE})
    result = runner.invoke(store_cli.store_app, ["status", "--estate", lab, "--lab"])
    assert result.exit_code == 5, result.output  # README: 5 is a store host that could not be asked
    assert result.output.strip().splitlines()[-1] == "store-1b: podman exited 125: no such container"
    assert "Traceback" not in result.output


def test_unknown_pair(monkeypatch: pytest.MonkeyPatch, lab: str) -> None:
    canned = _use(monkeypatch, {})
    result = runner.invoke(store_cli.store_app, ["status", "--estate", lab, "--lab", "--pair", "cyrus-9"])
    assert result.exit_code == 2  # README: 2 is a usage error
    assert "no store pair cyrus-9 in estate lab (pairs: cyrus-1)" in result.output
    assert canned.calls == []
    # The control: a pair the estate has is checked.
    canned = _use(monkeypatch, {"store-1a": LIVE, "store-1b": RECEIVER, "backup-1": RECEIVER})
    known = runner.invoke(store_cli.store_app, ["status", "--estate", lab, "--lab", "--pair", "cyrus-1"])
    assert known.exit_code == 1, known.output
    assert "Pair cyrus-1 (live store-1a)" in known.stdout
    assert sorted(host for host, _ in canned.calls) == ["backup-1", "store-1a", "store-1b"]


def test_without_lab_the_hosts_are_reached_by_ssh(monkeypatch: pytest.MonkeyPatch, lab: str) -> None:
    made: list[SshRunner] = []

    class Recording(SshRunner):
        def __init__(self, addresses: dict[str, str], *, user: str = "root") -> None:
            super().__init__(addresses, user=user)
            made.append(self)

        def run(self, host: str, argv: tuple[str, ...] | list[str], **_: object) -> str:
            raise StoreError(f"{host}: ssh exited 255: Connection refused")

    monkeypatch.setattr(store_cli, "SshRunner", Recording)
    result = runner.invoke(store_cli.store_app, ["status", "--estate", lab, "--ssh-user", "admin"])
    assert result.exit_code == 5
    [ssh] = made
    assert ssh.addresses["store-1a"] == "10.251.0.25"
    command = ssh.command("store-1a", ["echo", "it's"])
    assert command[:-1] == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "admin@10.251.0.25"]
    assert command[-1] == "runuser -u cyrus -- echo 'it'\"'\"'s'"
