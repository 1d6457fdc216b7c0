"""The store consistency check without a server: parsing what hosts report, and comparing.

The snapshots under tests/data/store/ are real answers of a Cyrus 3.6 host to
hermes.store.examine.SNAPSHOT_COMMAND (the receiver's edited to lag one delivery behind
and to hold another pair's mailbox, as a backup server does).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hermes.errors import UsageError
from hermes.loader import load_estate
from hermes.store import (
    Agreement,
    HostSnapshot,
    MailboxState,
    PairSpec,
    StoreError,
    SyncLogFile,
    channel_status,
    check_pairs,
    compare_mailboxes,
    pair_specs,
    parse_mbexamine,
    parse_snapshot,
    parse_sync_logs,
)
from hermes.store.examine import SNAPSHOT_COMMAND
from tests.conftest import LAB

DATA = Path(__file__).parent / "data" / "store"
LIVE = parse_snapshot("store-1a", (DATA / "snapshot-live.txt").read_text())
RECEIVER = parse_snapshot("store-1b", (DATA / "snapshot-receiver.txt").read_text())

ALICE = MailboxState("user.alice", "uid-alice", 1000, 8, 7, 13, 1_700_000_100)


# Parsing ----------------------------------------------------------------------------------


def test_parse_snapshot_reads_every_mailbox_header() -> None:
    assert LIVE.taken_at == pytest.approx(1795612459.460048296)
    assert sorted(LIVE.mailboxes) == [
        "user.alice",
        "user.alice.Archive",
        "user.alice.Trash2",
        "user.alice.Work",
        "user.bob",
        "user.carol",
    ]
    assert LIVE.mailboxes["user.alice"] == MailboxState(
        name="user.alice",
        unique_id="hbgncp2e1bvxch6lve968p2z",
        uidvalidity=1795609800,
        last_uid=8,
        messages=7,
        highest_modseq=13,
        last_append=1795610458,
    )
    assert LIVE.mailboxes["user.bob"].last_uid == 3


def test_parse_snapshot_reads_the_sync_logs() -> None:
    assert LIVE.sync_logs == (
        SyncLogFile("replica", "log", 0, pytest.approx(1795612459.3196064810)),
        SyncLogFile("replica", "log-4242", 19, pytest.approx(1795612459.3229138650)),
    )
    # An empty `log` is no work; a log-<pid> left by a failed run is, whatever its size.
    assert [f.name for f in LIVE.pending("replica")] == ["log-4242"]
    assert LIVE.pending("backup") == ()
    assert RECEIVER.sync_logs == ()


def test_mailbox_owner() -> None:
    def owner(name: str) -> str | None:
        return replace(ALICE, name=name).owner

    assert owner("user.alice") == "alice"
    assert owner("user.alice.Work.2024") == "alice"
    assert owner("DELETED.user.alice.Trash.6B06D50B") == "alice"
    assert owner("shared.news") is None
    assert owner("user") is None


def test_parse_sync_logs_without_a_channel_directory() -> None:
    assert parse_sync_logs("log 12 10.5\n\n") == (SyncLogFile("", "log", 12, 10.5),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no marks at all", "unexpected answer"),
        ("noon\n--- sync logs\n--- mailboxes\n", "unreadable clock"),
        ("1.0\n--- sync logs\nreplica/log twelve 1.0\n--- mailboxes\n", "unreadable sync log"),
        (
            "1.0\n--- sync logs\n--- mailboxes\nExamining user.x... Mailbox Header Info:\n  Unique ID: abc\n",
            "no messages for mailbox user.x",
        ),
    ],
)
def test_unreadable_answers_are_store_errors(text: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        parse_snapshot("h", text)


def test_parse_mbexamine_of_nothing() -> None:
    assert parse_mbexamine("") == {}


def test_snapshot_command_reads_headers_only() -> None:
    assert SNAPSHOT_COMMAND[:2] == ("sh", "-c")
    assert "mbexamine -s 2147483647 '*'" in SNAPSHOT_COMMAND[2]


# Comparing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "differences"),
    [
        ({}, ()),
        ({"last_uid": 7}, ("last_uid",)),
        ({"messages": 6, "highest_modseq": 12}, ("messages", "highest_modseq")),
        ({"uidvalidity": 999}, ("uidvalidity",)),
        # Created independently on both sides: same name, another mailbox.
        ({"unique_id": "uid-forked"}, ("unique_id",)),
    ],
)
def test_compare_one_mailbox(change: dict[str, object], differences: tuple[str, ...]) -> None:
    [result] = compare_mailboxes({"user.alice": ALICE}, {"user.alice": replace(ALICE, **change)})  # type: ignore[arg-type]
    assert result.differences == differences
    assert result.agreement is (Agreement.DIFFER if differences else Agreement.AGREE)


def test_lag_is_the_gap_between_last_deliveries() -> None:
    [behind] = compare_mailboxes({"user.alice": ALICE}, {"user.alice": replace(ALICE, last_uid=7, last_append=1_700_000_040)})
    assert behind.lag_seconds == 60.0
    [missing] = compare_mailboxes({"user.alice": ALICE}, {})
    assert missing.agreement is Agreement.MISSING and missing.target is None
    assert missing.lag_seconds > 0
    [empty_missing] = compare_mailboxes({"user.alice": replace(ALICE, last_append=0)}, {})
    assert empty_missing.lag_seconds == 0.0


def test_receiver_only_mailboxes_count_for_the_pairs_users() -> None:
    source = {"user.alice": ALICE}
    target = {
        "user.alice": ALICE,
        "user.dave": replace(ALICE, name="user.dave", unique_id="uid-dave"),
        "DELETED.user.alice.Old.6B06D50B": replace(ALICE, name="DELETED.user.alice.Old.6B06D50B", unique_id="uid-old"),
    }
    everything = compare_mailboxes(source, target)
    assert {(c.mailbox, c.agreement) for c in everything} == {
        ("user.alice", Agreement.AGREE),
        ("user.dave", Agreement.EXTRA),
        ("DELETED.user.alice.Old.6B06D50B", Agreement.EXTRA),
    }
    # A backup server also holds other pairs' users: only this pair's count.
    mine = compare_mailboxes(source, target, owners={"alice"})
    assert [(c.mailbox, c.agreement) for c in mine] == [
        ("DELETED.user.alice.Old.6B06D50B", Agreement.EXTRA),
        ("user.alice", Agreement.AGREE),
    ]


def test_channel_status_from_real_snapshots() -> None:
    status = channel_status("replica", LIVE, RECEIVER, owners={"alice", "bob", "carol"})
    assert (status.source, status.target) == ("store-1a", "store-1b")
    assert not status.caught_up
    assert [f.name for f in status.pending_logs] == ["log-4242"]
    assert status.oldest_pending_age == pytest.approx(1795612459.460048296 - 1795612459.3229138650)
    by_name = {m.mailbox: m for m in status.mailboxes}
    assert "user.dave" not in by_name
    assert by_name["user.alice"].differences == ("last_uid", "messages", "highest_modseq")
    assert by_name["user.alice"].lag_seconds == 58.0
    assert status.agreeing == 5 and len(status.mailboxes) == 6
    assert not status.in_sync
    assert status.lag_seconds == 58.0


def test_a_channel_in_sync_has_no_lag() -> None:
    receiver = HostSnapshot("store-1b", LIVE.taken_at, LIVE.mailboxes, ())
    live = replace(LIVE, sync_logs=(SyncLogFile("replica", "log", 0, 1.0),))
    status = channel_status("replica", live, receiver)
    assert status.caught_up and status.in_sync
    assert status.lag_seconds == 0.0
    # The other channel's backlog does not count against this one (the control: it does
    # count against its own).
    backlog = replace(live, sync_logs=(SyncLogFile("replica", "log-run", 5, 1.0),))
    assert channel_status("backup", backlog, receiver).in_sync
    assert not channel_status("replica", backlog, receiver).in_sync


# Pairs ------------------------------------------------------------------------------------


def test_pair_channels_follow_the_playbook() -> None:
    spec = PairSpec("p", live="a", spare="b", backup="c", owners=frozenset())
    assert spec.channels == (("replica", "b"), ("backup", "c"))
    # After a switchover the former master is the spare.
    assert replace(spec, live="b", spare="a").channels == (("replica", "a"), ("backup", "c"))


def test_pair_specs_from_the_lab_estate() -> None:
    loaded = load_estate(LAB)
    first, second = pair_specs(loaded)
    assert (first.name, first.live, first.spare, first.backup) == ("cyrus-1", "store-1a", "store-1b", "backup-1")
    assert (second.name, second.live, second.spare, second.backup) == ("cyrus-2", "store-2a", "store-2b", "backup-1")
    # Each pair owns the users placed on it, and every account is owned once.
    assert first.owners == frozenset(u for u, p in loaded.placement.items() if p == "cyrus-1")
    assert first.owners | second.owners == frozenset(loaded.accounts) and not first.owners & second.owners
    assert [spec.name for spec in pair_specs(loaded, ["cyrus-2"])] == ["cyrus-2"]
    with pytest.raises(UsageError, match="no store pair nope"):
        pair_specs(loaded, ["nope"])


class FakeRunner:
    """Answers the snapshot command from fixed snapshots and counts the calls."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def run(self, host: str, argv: tuple[str, ...] | list[str], **_: object) -> str:
        self.calls.append((host, tuple(argv)))
        if host not in self.answers:
            raise StoreError(f"{host}: unreachable")
        return self.answers[host]


def test_check_pairs_asks_each_host_once() -> None:
    live, receiver = (DATA / "snapshot-live.txt").read_text(), (DATA / "snapshot-receiver.txt").read_text()
    runner = FakeRunner({"a": live, "b": receiver, "c": receiver})
    specs = [
        PairSpec("p1", live="a", spare="b", backup="c", owners=frozenset({"alice", "bob", "carol"})),
        PairSpec("p2", live="b", spare="a", backup="c", owners=frozenset({"dave"})),
    ]
    statuses = check_pairs(specs, runner)
    assert sorted(host for host, _ in runner.calls) == ["a", "b", "c"]
    assert all(argv == SNAPSHOT_COMMAND for _, argv in runner.calls)
    assert [s.pair for s in statuses] == ["p1", "p2"]
    assert [(c.channel, c.target) for c in statuses[0].channels] == [("replica", "b"), ("backup", "c")]
    assert not statuses[0].in_sync
    # The backup channel of p1 ignores dave's mailbox (another pair's).
    assert "user.dave" not in {m.mailbox for m in statuses[0].channels[1].mailboxes}


def test_check_pairs_reports_an_unreachable_host() -> None:
    with pytest.raises(StoreError, match="c: unreachable"):
        empty = "1.0\n--- sync logs\n--- mailboxes\n"
        check_pairs([PairSpec("p", "a", "b", "c", frozenset())], FakeRunner({"a": empty, "b": empty}))
