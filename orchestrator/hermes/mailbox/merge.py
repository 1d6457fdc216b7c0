"""What merging recovered copies of a user's folders into the live folders would do (pure).

A *copy* is a folder tree in the user's account that holds an earlier or suspect state of
part of the account: a backup restored into a folder, a mailbox set aside after an incident.
Its root stands for the *target* folder (INBOX by default) and each folder below it for the
target's folder of the same relative name, as TRIUMF's 2010 script treated its three inboxes
(seed 002). A message of a copy is copied into its target unless the target, or a copy
merged before it, already holds the same message:

* **identity** is Cyrus's content GUID (the SHA-1 of the message as stored, which a restore,
  a replica and a COPY all keep), else the Message-ID header: a copy that gained or lost a
  header on its way (another server, a client's re-upload) is still the same message. A
  message with neither the GUID of another nor a Message-ID is copied.
* a message flagged ``\\Deleted`` in its copy is not brought back: its owner deleted it there.
  A message deleted in the target still counts as present: it is not brought back either.
* copies are merged in the order given; within one, by UID, so the first copy of a message
  wins.

Every target that receives a message is first copied, whole, to a backup folder below the
backup root (``<target root>.Before merge <stamp>``, mirroring the target's tree), as TRIUMF
backed up each folder to ``<folder>.bk4jun``. Nothing is ever removed or expunged, so a merge
that stops half-way is completed by running it again: what it copied is now a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from hermes.errors import UsageError

DELETED = "\\Deleted"
BACKUP_PREFIX = "Before merge"


@dataclass(frozen=True)
class Message:
    """One message of a folder as the store reports it."""

    uid: int
    guid: str | None  # Cyrus's content GUID, 40 hex digits
    message_id: str | None
    internal_date: datetime
    flags: frozenset[str]
    size: int


@dataclass(frozen=True)
class FolderMerge:
    """What happens to one target folder."""

    target: str
    exists: bool
    # The folder the target's messages are copied to first: None when nothing is copied into
    # the target, or it does not exist yet (there is nothing to keep).
    backup: str | None
    kept: int  # messages the target holds now
    # (copy folder, UIDs of its messages to copy here), copies in merge order
    copies: tuple[tuple[str, tuple[int, ...]], ...]
    duplicates: int  # messages of the copies the target (or an earlier copy) already holds
    deleted: int  # messages of the copies flagged \Deleted there, not brought back
    size: int  # bytes the copied messages add

    @property
    def copied(self) -> int:
        return sum(len(uids) for _, uids in self.copies)

    @property
    def touched(self) -> bool:
        return self.copied > 0


@dataclass(frozen=True)
class MergePlan:
    user: str
    target: str
    copies: tuple[str, ...]
    backup_root: str
    folders: tuple[FolderMerge, ...]
    # The bytes the merge adds to the user's quota: the messages copied in, and the backups.
    quota_needed: int

    @property
    def copied(self) -> int:
        return sum(f.copied for f in self.folders)

    @property
    def touched(self) -> tuple[FolderMerge, ...]:
        return tuple(f for f in self.folders if f.touched)


class _Seen:
    """The identities a target holds: GUIDs and Message-IDs."""

    def __init__(self, messages: Sequence[Message]) -> None:
        self.guids: set[str] = set()
        self.message_ids: set[str] = set()
        for message in messages:
            self.add(message)

    def holds(self, message: Message) -> bool:
        return (message.guid is not None and message.guid in self.guids) or (
            message.message_id is not None and message.message_id in self.message_ids
        )

    def add(self, message: Message) -> None:
        if message.guid is not None:
            self.guids.add(message.guid)
        if message.message_id is not None:
            self.message_ids.add(message.message_id)


def _within(name: str, root: str, separator: str) -> bool:
    return name == root or name.startswith(root + separator)


def _relative(name: str, root: str, separator: str) -> str:
    return name[len(root) :].removeprefix(separator)


def _joined(root: str, relative: str, separator: str) -> str:
    return f"{root}{separator}{relative}" if relative else root


def backup_root(target: str, stamp: str, separator: str) -> str:
    """Where the touched targets are kept before the merge: a folder below the target root."""
    return _joined(target, f"{BACKUP_PREFIX} {stamp}", separator)


def _check_roots(folders: Mapping[str, Sequence[Message]], target: str, copies: Sequence[str], separator: str) -> None:
    if not copies:
        raise UsageError("name at least one copy to merge (--copy)")
    for copy in copies:
        if copy not in folders:
            raise UsageError(f"--copy {copy!r}: no such folder in the account")
        if _within(target, copy, separator):
            raise UsageError(f"--copy {copy!r}: the target {target!r} lies within it")
    for i, copy in enumerate(copies):
        for other in copies[i + 1 :]:
            if _within(copy, other, separator) or _within(other, copy, separator):
                raise UsageError(f"--copy {copy!r} and --copy {other!r}: one lies within the other (name each copy once)")


def plan_merge(
    user: str,
    folders: Mapping[str, Sequence[Message]],
    *,
    target: str,
    copies: Sequence[str],
    separator: str,
    stamp: str,
) -> MergePlan:
    """The merge of ``copies`` (folder roots, in merge order) into ``target``, given every
    folder of the account and its messages. Refuses (UsageError) copies that do not exist or
    overlap, a target within a copy, a copy folder whose target would lie within a copy, and a
    backup root that exists already."""
    _check_roots(folders, target, copies, separator)
    backups = backup_root(target, stamp, separator)
    if any(_within(name, backups, separator) for name in folders):
        raise UsageError(f"the backup folder {backups!r} exists already: wait a minute and merge again")
    # target folder -> the copy folders that merge into it, in merge order
    sources: dict[str, list[str]] = {}
    for copy in copies:
        for name in sorted(n for n in folders if _within(n, copy, separator)):
            into = _joined(target, _relative(name, copy, separator), separator)
            if any(_within(into, c, separator) for c in copies):
                raise UsageError(f"--copy {copy!r}: its folder {name!r} would merge into {into!r}, which lies within a copy")
            sources.setdefault(into, []).append(name)
    plans = []
    for into in sorted(sources):
        present = folders.get(into, ())
        seen = _Seen(present)
        picked: list[tuple[str, tuple[int, ...]]] = []
        duplicates = deleted = size = 0
        for name in sources[into]:
            uids = []
            for message in sorted(folders[name], key=lambda m: m.uid):
                if DELETED in message.flags:
                    deleted += 1
                elif seen.holds(message):
                    duplicates += 1
                else:
                    seen.add(message)
                    uids.append(message.uid)
                    size += message.size
            if uids:
                picked.append((name, tuple(uids)))
        exists = into in folders
        touched = bool(picked)
        backup = _joined(backups, _relative(into, target, separator), separator) if touched and exists else None
        plans.append(
            FolderMerge(
                target=into,
                exists=exists,
                backup=backup,
                kept=len(present),
                copies=tuple(picked),
                duplicates=duplicates,
                deleted=deleted,
                size=size,
            )
        )
    quota = sum(p.size + (sum(m.size for m in folders[p.target]) if p.backup else 0) for p in plans)
    return MergePlan(user, target, tuple(copies), backups, tuple(plans), quota)


def missing_after(plan: MergePlan, copies: Mapping[str, Sequence[Message]], now: Mapping[str, Sequence[Message]]) -> list[str]:
    """What the merge should have put in each target and did not: ``copies`` are the copy
    folders as read before, ``now`` the targets as read after. Empty when the merge is whole."""
    missing = []
    for folder in plan.folders:
        seen = _Seen(now.get(folder.target, ()))
        for name, uids in folder.copies:
            by_uid = {m.uid: m for m in copies[name]}
            lost = [uid for uid in uids if not seen.holds(by_uid[uid])]
            if lost:
                missing.append(f"{folder.target}: {len(lost)} message(s) of {name} not there (UIDs {lost[:5]}...)")
    return missing
