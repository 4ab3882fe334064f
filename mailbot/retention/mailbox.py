"""Deleting a purged case's messages from the mailbox (``[retention] purge_mailbox``)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import select

from mailbot.cases.models import InboundFailure, MailboxCursor
from mailbot.config import MailboxSettings
from mailbot.mail.credentials import Credentials
from mailbot.mail.imap import ImapMailbox
from mailbot.store import Database

log = logging.getLogger("mailbot.retention")


class PurgingMailbox(ImapMailbox):
    """The mailbox session, with the one destructive operation retention needs."""

    def delete_by_message_id(self, folder: str, message_ids: Sequence[str]) -> int:
        """Delete (flag and expunge, those only) the messages of ``folder`` whose Message-ID
        is one of ``message_ids``; how many."""
        if not message_ids or self._select(folder, readonly=False) is None:
            return 0
        client = self._require()
        with self._translated(f"deleting purged messages in {folder}"):
            uids: set[int] = set()
            for message_id in message_ids:
                uids.update(client.search(["HEADER", "Message-ID", message_id]))
            if not uids:
                return 0
            client.delete_messages(sorted(uids))
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(sorted(uids))
            else:  # plain EXPUNGE also removes what others flagged \\Deleted; said in the docs
                client.expunge()
        return len(uids)

    def delete_arrived_before(self, folder: str, before: date, up_to_uid: int,
                              keep: Collection[int]) -> int:
        """Delete the messages of ``folder`` that arrived before ``before`` (INTERNALDATE), with
        a UID at most ``up_to_uid`` and not in ``keep``; how many."""
        if up_to_uid <= 0 or self._select(folder, readonly=False) is None:
            return 0
        client = self._require()
        with self._translated(f"deleting old messages in {folder}"):
            found = client.search(["BEFORE", before, "UID", f"1:{up_to_uid}"])
            uids = sorted(u for u in found if u <= up_to_uid and u not in keep)
            if not uids:
                return 0
            client.delete_messages(uids)
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(uids)
            else:
                client.expunge()
        return len(uids)


def delete_from_mailbox(settings: MailboxSettings, credentials: Credentials,
                        message_ids: Sequence[str]) -> int:
    """Delete the messages with these Message-IDs from every folder mailbot reads."""
    removed = 0
    mailbox = PurgingMailbox(settings, credentials=credentials)
    mailbox.connect()
    try:
        for folder in settings.folders:
            removed += mailbox.delete_by_message_id(folder, message_ids)
    finally:
        mailbox.close()
    log.info("deleted %d purged messages from the mailbox", removed)
    return removed


class KeepDays:
    """``[retention] mailbox_keep_days``: processed messages leave the folders after N days."""

    def __init__(self, settings: MailboxSettings, credentials: Credentials) -> None:
        self.settings = settings
        self.credentials = credentials

    def apply(self, db: Database, days: int, now: datetime) -> int:
        """Delete what arrived more than ``days`` days before ``now`` and is recorded: at or
        below the folder's cursor, and not among the failures still waiting for a retry or in
        quarantine. Never a message that is not yet committed as a case."""
        if days <= 0:
            return 0
        before = (now - timedelta(days=days)).date()
        removed = 0
        mailbox = PurgingMailbox(self.settings, credentials=self.credentials)
        mailbox.connect()
        try:
            for folder in self.settings.folders:
                state = mailbox.folder_state(folder)
                if state is None:
                    continue
                with db.session() as session:
                    cursor = session.get(MailboxCursor, folder)
                    if cursor is None or cursor.uidvalidity != state.uidvalidity:
                        continue
                    kept = set(session.scalars(select(InboundFailure.uid).where(
                        InboundFailure.folder == folder,
                        InboundFailure.uidvalidity == state.uidvalidity)))
                    last_uid = cursor.last_uid
                removed += mailbox.delete_arrived_before(folder, before, last_uid, kept)
        finally:
            mailbox.close()
        if removed:
            log.info("deleted %d messages older than %d days from the mailbox", removed, days)
        return removed
