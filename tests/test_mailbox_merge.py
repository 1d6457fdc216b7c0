"""The plan of `hermesctl mailbox merge` (hermes.mailbox.merge): which messages of which copy
go where, what counts as the same message, and what is refused. The merge itself, on a real
Cyrus, is molecule/store's test_mailbox_merge."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hermes.errors import UsageError
from hermes.mailbox.account import check_quota
from hermes.mailbox.merge import Message, missing_after, plan_merge

WHEN = datetime(2010, 5, 26, tzinfo=UTC)


def mail(uid: int, guid: str | None, message_id: str | None = None, *flags: str, size: int = 100) -> Message:
    return Message(uid, guid, message_id, WHEN, frozenset(flags), size)


def test_a_message_is_copied_once_unless_its_guid_or_message_id_is_there() -> None:
    folders = {
        "INBOX": [mail(1, "a", "<a@x>"), mail(2, "b", None, "\\Deleted")],
        "INBOX.Old": [
            mail(1, "a", "<a@x>"),  # the same bytes: a duplicate
            mail(2, "a2", "<a@x>"),  # other bytes, the same Message-ID: a duplicate
            mail(3, "b"),  # deleted in the live folder, still there: a duplicate
            mail(4, "c"),  # new, no Message-ID: copied
            mail(5, "d", "<d@x>", "\\Deleted"),  # deleted in its copy: left out
            mail(6, "e", "<e@x>"),  # new: copied
        ],
        "INBOX.Suspect": [mail(1, "c"), mail(2, "e2", "<e@x>"), mail(3, "f", "<f@x>")],
    }
    merged = plan_merge("carol", folders, target="INBOX", copies=["INBOX.Old", "INBOX.Suspect"], separator=".", stamp="S")
    (inbox,) = merged.folders
    assert inbox.copies == (("INBOX.Old", (4, 6)), ("INBOX.Suspect", (3,)))
    assert (inbox.duplicates, inbox.deleted, inbox.kept) == (5, 1, 2)
    assert inbox.backup == "INBOX.Before merge S"
    # The quota takes the copied messages and the backup of what the folder held.
    assert merged.quota_needed == 3 * 100 + 2 * 100


def test_a_copys_folders_merge_into_the_targets_folders_of_the_same_name() -> None:
    folders = {
        "INBOX": [mail(1, "a")],
        "INBOX.Sent Items": [mail(1, "s1")],
        "INBOX.Été": [mail(1, "x")],
        "INBOX.R": [mail(1, "a")],
        "INBOX.R.Sent Items": [mail(1, "s1"), mail(2, "s2")],
        "INBOX.R.Été": [mail(1, "x")],
        "INBOX.R.Projets à faire": [mail(1, "p")],
    }
    merged = plan_merge("carol", folders, target="INBOX", copies=["INBOX.R"], separator=".", stamp="S")
    by_target = {f.target: f for f in merged.folders}
    assert set(by_target) == {"INBOX", "INBOX.Sent Items", "INBOX.Été", "INBOX.Projets à faire"}
    assert [f.target for f in merged.touched] == ["INBOX.Projets à faire", "INBOX.Sent Items"]
    # An existing folder that receives messages is backed up; a new one has nothing to keep,
    # and an untouched one is left alone.
    assert by_target["INBOX.Sent Items"].backup == "INBOX.Before merge S.Sent Items"
    new = by_target["INBOX.Projets à faire"]
    assert (new.exists, new.backup, new.copies) == (False, None, (("INBOX.R.Projets à faire", (1,)),))
    assert by_target["INBOX"].backup is None and by_target["INBOX.Été"].backup is None


@pytest.mark.parametrize(
    ("copies", "target", "extra", "message"),
    [
        ((), "INBOX", {}, "name at least one copy"),
        (("INBOX.Gone",), "INBOX", {}, "'INBOX.Gone': no such folder"),
        (("INBOX",), "INBOX.R", {}, "the target 'INBOX.R' lies within it"),
        (("INBOX.R", "INBOX.R.Sub"), "INBOX", {"INBOX.R.Sub": []}, "one lies within the other"),
        (("INBOX.R",), "INBOX", {"INBOX.Before merge S": []}, "exists already"),
        # INBOX.Q.R would merge into INBOX.R, which is a copy itself.
        (("INBOX.Q", "INBOX.R"), "INBOX", {"INBOX.Q": [], "INBOX.Q.R": []}, "lies within a copy"),
    ],
)
def test_a_merge_that_cannot_be_carried_out_whole_is_refused(
    copies: tuple[str, ...], target: str, extra: dict[str, list[Message]], message: str
) -> None:
    folders = {"INBOX": [mail(1, "a")], "INBOX.R": [mail(1, "b")], **extra}
    with pytest.raises(UsageError, match=message):
        plan_merge("carol", folders, target=target, copies=copies, separator=".", stamp="S")
    # The same account merges the copy that is there, into a target outside it.
    merged = plan_merge(
        "carol",
        {"INBOX": [mail(1, "a")], "INBOX.R": [mail(1, "b")]},
        target="INBOX",
        copies=["INBOX.R"],
        separator=".",
        stamp="T",
    )
    assert merged.copied == 1


def test_the_quota_must_take_the_copies_and_the_backups() -> None:
    merged = plan_merge(
        "carol",
        {"INBOX": [mail(1, "a", size=3000)], "INBOX.R": [mail(1, "b", size=2000)]},
        target="INBOX",
        copies=["INBOX.R"],
        separator=".",
        stamp="S",
    )
    assert merged.quota_needed == 5000
    with pytest.raises(UsageError, match=r"needs 5 KiB of quota .* and 4 KiB are left"):
        check_quota(merged, 4999)
    check_quota(merged, 5000)
    check_quota(merged, None)  # no storage limit


def test_a_verification_finds_what_did_not_arrive() -> None:
    copies = {"INBOX.R": [mail(1, "b", "<b@x>"), mail(2, "c")]}
    merged = plan_merge(
        "carol", {"INBOX": [mail(1, "a")], **copies}, target="INBOX", copies=["INBOX.R"], separator=".", stamp="S"
    )
    assert missing_after(merged, copies, {"INBOX": [mail(1, "a"), mail(2, "b"), mail(3, "c")]}) == []
    # Found by Message-ID too: the copy kept its identity.
    assert missing_after(merged, copies, {"INBOX": [mail(2, "b2", "<b@x>"), mail(3, "c")]}) == []
    (line,) = missing_after(merged, copies, {"INBOX": [mail(1, "a"), mail(2, "b")]})
    assert "1 message(s) of INBOX.R" in line and "[2]" in line
