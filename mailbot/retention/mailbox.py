"""Deleting a purged case's messages from the mailbox (``[retention] purge_mailbox``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mailbot.config import MailboxSettings
from mailbot.mail.credentials import Credentials
from mailbot.mail.imap import ImapMailbox

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
