"""The hooks through which encrypted or signed mail reaches intake, and leaves through the outbox.

Intake knows nothing of any cryptography. The app may hand it an ``Unwrapper``: given a message's
raw bytes it answers with the message as its sender meant it to be read (decrypted, the real
Subject of protected headers in place) and what it found on the way (flags, a signature, a
problem). Intake parses that text for classification, correlation, commands and the stored
text; the raw bytes stay the ones that arrived. Outgoing mail passes a ``Sealer`` (see
``mailbot.outgoing``), which may encrypt and sign it.

Everything here is plain values: ``mailbot.pgp`` implements both protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# Message flags an unwrapper may set (also on the case, for UNDECRYPTABLE).
ENCRYPTED = "encrypted"
SIGNED = "signed"  # a good signature over the whole message
BAD_SIGNATURE = "bad-signature"
UNVERIFIED_SIGNATURE = "unverified-signature"  # unknown, expired or revoked key; unreadable
UNDECRYPTABLE = "undecryptable"


@dataclass(frozen=True)
class Signature:
    """One signature's verdict. ``status``: good | bad | unknown-key | expired-key |
    revoked-key | error. ``addresses``: the e-mail addresses on the signing key (when known)."""

    status: str
    fingerprint: str = ""
    addresses: tuple[str, ...] = ()
    key_known: bool = False

    @property
    def good(self) -> bool:
        return self.status == "good"


@dataclass(frozen=True)
class Unwrapped:
    """What an unwrapper made of one message.

    ``raw``: the bytes to parse (the outer header fields over the decrypted content); the same
    bytes as arrived when nothing could be opened. ``problem``: why it could not be decrypted
    ("" when it could, or when there was nothing to decrypt); a problem makes the case
    ``undecryptable`` and tells the team. ``details`` are recorded on the message."""

    raw: bytes
    flags: tuple[str, ...] = ()
    signature: Signature | None = None
    problem: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def decrypted(self) -> bool:
        return ENCRYPTED in self.flags and not self.problem


class Unwrapper(Protocol):
    """Opens what the sender sealed. Must never raise: a failure is an ``Unwrapped`` with a
    ``problem``. Returns None for a message that has nothing to open or verify."""

    def unwrap(self, raw: bytes) -> Unwrapped | None: ...


class Sealer(Protocol):
    """Seals outgoing mail for its recipients (for example encrypts and signs it)."""

    def can_encrypt_to(self, recipients: list[str]) -> bool:
        """Whether ``seal`` would encrypt a message to exactly these recipients."""
        ...

    def seal(self, data: bytes, *, recipients: list[str], kind: str) -> bytes:
        """The message to send instead of ``data`` (which is returned when nothing applies).
        May raise ``mailbot.errors.MailbotError``; the caller then sends nothing."""
        ...
