"""What the core needs from a mailbox, without importing an IMAP library.

``mailbot.mail.imap.ImapMailbox`` is the real thing; tests of pure code may pass anything with
these methods. Every method may raise ``mailbot.errors.MailboxUnavailable``, after which the
session is gone and ``connect()`` must be called again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailbot.mail.message import FetchedMessage


@dataclass(frozen=True)
class FolderState:
    """A folder as SELECT reports it. A new ``uidvalidity`` means every stored UID is void."""

    uidvalidity: int
    uidnext: int
    exists: int


class Mailbox(Protocol):
    def connect(self) -> None:
        """Open a fresh session (closing any previous one) and log in."""

    def close(self) -> None:
        """Log out; never raises."""

    def folder_state(self, folder: str) -> FolderState | None:
        """The folder's UIDVALIDITY, UIDNEXT and message count; None if it does not exist."""

    def fetch_new(
        self, folder: str, after_uid: int, batch_size: int
    ) -> Iterator[list[FetchedMessage]]:
        """Messages with a UID above ``after_uid``, ascending, in lists of at most batch_size."""

    def fetch_uids(self, folder: str, uids: Sequence[int]) -> list[FetchedMessage]:
        """These messages (those that still exist), ascending by UID."""

    def arrival_dates(self, folder: str, after_uid: int) -> dict[int, datetime]:
        """UID -> INTERNALDATE of the messages above ``after_uid``; nothing else is read."""

    def search_uids(self, folder: str) -> list[int]:
        """Every UID in the folder, ascending."""

    def wait_for_news(
        self, folder: str, timeout: float, stop: threading.Event | None = None
    ) -> bool:
        """Block until new mail may be in ``folder`` (True) or timeout / stop (False)."""
