"""Immutable values that describe mail: what parsing yields and what fetching yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Address:
    """One mailbox from a header: ``name`` the display name, ``addr`` the lower-cased addr-spec."""

    name: str
    addr: str

    @property
    def domain(self) -> str:
        return self.addr.rpartition("@")[2]


@dataclass(frozen=True)
class Attachment:
    """Metadata only. ``filename`` is reporter input: shown, never used as a path."""

    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class InboundMessage:
    """Everything intake needs to know about one message, parsed once, never raising.

    Header-derived strings are already decoded (RFC 2047) and stripped of control characters.
    ``headers`` keeps every header field (lower-cased name -> all values, in order) for the rules.
    """

    raw_size: int
    from_: tuple[Address, ...]  # every address of every From header
    from_header_count: int  # how many From header fields there were
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    date: datetime | None  # aware, within DATE_RANGE; None when absent, unparseable or out of it
    message_id: str  # "<...>" as written, "" when absent
    in_reply_to: tuple[str, ...]  # "<...>" ids
    references: tuple[str, ...]  # "<...>" ids, at most 100 kept (the last ones)
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    content_type: str = "text/plain"  # of the top-level part, lower-case
    text_body: str = ""  # plain text (HTML converted), capped
    own_text: str = ""  # what the sender wrote in this message (mailbot.mail.owntext.own_text)
    bad_date: bool = False  # a Date field was there but unreadable or out of range
    repeated_fields: tuple[str, ...] = ()  # fields that must be single but came more than once
    attachments: tuple[Attachment, ...] = ()
    part_types: tuple[str, ...] = ()  # content types of its own MIME parts, not of enclosed mail
    defects: tuple[str, ...] = ()  # what went wrong while parsing, for the record
    unparseable: bool = False  # no header field the sender wrote (trace fields aside)

    @property
    def sender(self) -> Address | None:
        """The single unambiguous From address, or None when there are none or several."""
        if self.from_header_count == 1 and len(self.from_) == 1:
            return self.from_[0]
        return None

    def header(self, name: str) -> str:
        """The first value of a header, or ""."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""


@dataclass(frozen=True)
class FetchedMessage:
    """A message as it came out of a mailbox folder (or an ingested file)."""

    raw: bytes
    folder: str
    uidvalidity: int
    uid: int
    internal_date: datetime  # aware, UTC
    # In the folder before mailbot first read it (mailbot.intake.history): imported, never
    # answered.
    history: bool = False


# Our loop header: everything mailbot sends carries it; mail that carries it is never answered.
LOOP_HEADER = "X-Mailbot-Loop"
