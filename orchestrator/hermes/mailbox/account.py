"""A user's account on the live member of its store pair, over IMAP, as the pair's Cyrus
administrator acting for the user (SASL PLAIN with the user as authorization identity, which
Cyrus grants its admins): folders are named as the user sees them, and the user's own rights
apply. IMAPClient encodes non-ASCII folder names (modified UTF-7) and parses the answers.

Reads with EXAMINE and ``BODY.PEEK`` (nothing is marked seen); copies with ``UID COPY``, which
on one Cyrus server keeps the message's bytes (and so its GUID), flags and internal date.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from hermes.errors import StoreError, UsageError
from hermes.mailbox.merge import FolderMerge, MergePlan, Message, missing_after, plan_merge

# What is read of every message: Cyrus's content GUID (its DIGEST.SHA1 fetch item), the
# Message-ID header and what a copy must keep.
_FETCH = ["DIGEST.SHA1", "INTERNALDATE", "FLAGS", "RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
_HEADER = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
_NOSELECT = (b"\\Noselect", b"\\NonExistent")
# UIDs per UID COPY command, to keep each command line short.
_CHUNK = 500
TIMEOUT = 60.0


@dataclass(frozen=True)
class AccountAccess:
    """Where a user's account is, and the administrator that may act for the user."""

    host: str  # the live member, for messages
    address: str
    port: int
    implicit_tls: bool  # IMAPS; else STARTTLS on the IMAP port
    tls: ssl.SSLContext
    admin: str
    admin_password: str


def _message_id(header: bytes) -> str | None:
    value = BytesHeaderParser().parsebytes(header).get("Message-ID")
    if value is None:
        return None
    # Folded or padded, the same Message-ID: whitespace is not part of it.
    return "".join(str(value).split()) or None


def _message(uid: int, data: Mapping[bytes, Any]) -> Message:
    guid = data.get(b"DIGEST.SHA1")
    return Message(
        uid=uid,
        guid=guid.decode().lower() if isinstance(guid, bytes) and guid else None,
        message_id=_message_id(data.get(_HEADER) or b""),
        internal_date=data[b"INTERNALDATE"],
        flags=frozenset(f.decode() if isinstance(f, bytes) else str(f) for f in data[b"FLAGS"]),
        size=int(data[b"RFC822.SIZE"]),
    )


class Account:
    """One open session on a user's account."""

    def __init__(self, client: IMAPClient, access: AccountAccess, user: str) -> None:
        self.client = client
        self.access = access
        self.user = user

    def _fail(self, doing: str, error: Exception) -> StoreError:
        return StoreError(f"{self.access.host}: {doing} for {self.user}: {error}")

    def separator(self) -> str:
        try:
            delimiter = self.client.list_folders("", "")[0][1]
        except (IMAPClientError, IndexError, OSError) as error:
            raise self._fail("LIST", error) from error
        return delimiter.decode() if isinstance(delimiter, bytes) else str(delimiter)

    def listing(self) -> dict[str, bool]:
        """Every folder name of the account, and whether it can be selected (a parent
        that only holds folders cannot)."""
        try:
            listed = self.client.list_folders()
        except (IMAPClientError, OSError) as error:
            raise self._fail("LIST", error) from error
        return {str(name): not set(flags) & set(_NOSELECT) for flags, _, name in listed}

    def folders(self, names: Mapping[str, bool]) -> dict[str, list[Message]]:
        """The selectable folders of ``names`` with their messages."""
        return {name: self.messages(name) for name, selectable in names.items() if selectable}

    def messages(self, folder: str) -> list[Message]:
        try:
            selected = self.client.select_folder(folder, readonly=True)
            if not int(selected.get(b"EXISTS", 0)):
                return []
            fetched = self.client.fetch(self.client.search("ALL"), _FETCH)
        except (IMAPClientError, OSError) as error:
            raise self._fail(f"reading {folder!r}", error) from error
        return sorted((_message(uid, data) for uid, data in fetched.items()), key=lambda m: m.uid)

    def quota_left(self) -> int | None:
        """Bytes the user's quota root has left, or None without a storage limit."""
        try:
            _, quotas = self.client.get_quota_root("INBOX")
        except (IMAPClientError, OSError) as error:
            raise self._fail("GETQUOTAROOT", error) from error
        limits = [q for q in quotas if str(q.resource).upper() == "STORAGE"]
        return min((q.limit - q.usage) * 1024 for q in limits) if limits else None

    def create(self, folder: str, separator: str, existing: set[str]) -> None:
        """Create ``folder`` and whichever of its parents the account lacks."""
        parts = folder.split(separator)
        for depth in range(1, len(parts) + 1):
            name = separator.join(parts[:depth])
            if name in existing or name == "INBOX":
                continue
            try:
                self.client.create_folder(name)
            except (IMAPClientError, OSError) as error:
                raise self._fail(f"creating {name!r}", error) from error
            existing.add(name)

    def copy(self, source: str, uids: Sequence[int], target: str) -> None:
        try:
            self.client.select_folder(source, readonly=True)
            for start in range(0, len(uids), _CHUNK):
                self.client.copy(list(uids[start : start + _CHUNK]), target)
        except (IMAPClientError, OSError) as error:
            raise self._fail(f"copying from {source!r} to {target!r}", error) from error


@contextmanager
def account(access: AccountAccess, user: str) -> Iterator[Account]:
    """A session on ``user``'s account, logged out at the end."""
    try:
        client = IMAPClient(access.address, port=access.port, ssl=access.implicit_tls, ssl_context=access.tls, timeout=TIMEOUT)
        if not access.implicit_tls:
            client.starttls(access.tls)
    except (OSError, IMAPClientError) as error:
        raise StoreError(f"{access.host}: no IMAP session at {access.address}:{access.port}: {error}") from error
    # Times as the server states them (with their offset), not converted to this machine's zone.
    client.normalise_times = False
    try:
        try:
            client.plain_login(access.admin, access.admin_password, authorization_identity=user)
        except (IMAPClientError, OSError) as error:
            raise StoreError(f"{access.host}: the administrator cannot act for {user}: {error}") from error
        yield Account(client, access, user)
    finally:
        try:
            client.logout()
        except (IMAPClientError, OSError):
            client.shutdown()


def check_quota(plan: MergePlan, left: int | None) -> None:
    """Refuse a merge the user's quota cannot take, before anything is copied."""
    if left is not None and plan.quota_needed > left:
        need, have = math.ceil(plan.quota_needed / 1024), max(0, left) // 1024
        raise UsageError(
            f"{plan.user}: the merge needs {need} KiB of quota (copies and backups) and {have} KiB are left:"
            " raise the user's quota for the merge (cyradm setquota), then merge again"
        )


def _apply_folder(session: Account, folder: FolderMerge, separator: str, existing: set[str]) -> None:
    if folder.backup is not None:
        session.create(folder.backup, separator, existing)
        # Read again, not taken from the plan: what arrived since planning is kept too.
        kept = [m.uid for m in session.messages(folder.target)]
        if kept:
            session.copy(folder.target, kept, folder.backup)
    if not folder.exists:
        session.create(folder.target, separator, existing)
    for source, uids in folder.copies:
        session.copy(source, uids, folder.target)


def apply(session: Account, plan: MergePlan, separator: str, existing: set[str]) -> list[str]:
    """Carry out ``plan``: back up each touched target, then copy the copies' messages in; the
    targets' messages that should be there and are not (empty when the merge is whole)."""
    for folder in plan.touched:
        _apply_folder(session, folder, separator, existing)
    sources = {name: session.messages(name) for folder in plan.touched for name, _ in folder.copies}
    now = {folder.target: session.messages(folder.target) for folder in plan.touched}
    return missing_after(plan, sources, now)


@dataclass(frozen=True)
class MergeResult:
    plan: MergePlan
    applied: bool
    missing: tuple[str, ...]  # what the verification found missing after the merge


def merge(access: AccountAccess, user: str, *, target: str, copies: Sequence[str], stamp: str, dry_run: bool) -> MergeResult:
    """Plan the merge of ``copies`` into ``target`` from the account as it is now, refuse it if
    the quota cannot take it, and (unless ``dry_run``) carry it out and verify it."""
    with account(access, user) as session:
        separator = session.separator()
        names = session.listing()
        folders = session.folders(names)
        plan = plan_merge(user, folders, target=target, copies=copies, separator=separator, stamp=stamp)
        check_quota(plan, session.quota_left())
        if dry_run or not plan.touched:
            return MergeResult(plan, applied=False, missing=())
        return MergeResult(plan, applied=True, missing=tuple(apply(session, plan, separator, set(names))))
