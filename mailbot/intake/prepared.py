"""What intake works out from a message's bytes alone, before it looks at the database. Pure.

The dedupe key, the parse and the packed bytes depend on nothing but the raw message, so they
can be worked out anywhere: in the daemon's own process, or ahead of time in a parse process
while the daemon applies the batch before (``mailbot.intake.parse_pool``). Either way the
result is the same value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from mailbot import rawbytes
from mailbot.intake.rules import is_automatic
from mailbot.mail.message import InboundMessage
from mailbot.mail.parse import dedupe_key, parse_message

# What the duplicate check compares of a report (``SimilarReports.signer``), worked out from its
# subject and body text.
Signer = Callable[[str, str], object]


@dataclass(frozen=True)
class Prepared:
    dedupe_key: str  # of the raw bytes (``mailbot.mail.dedupe``), before any keying
    message: InboundMessage  # the raw bytes parsed, as they arrived (not decrypted)
    packed: bytes  # the raw bytes as ``mailbot.rawbytes`` packs them for storage
    # (the signer's answer,) when there was a signer and the message is not automatic mail
    signed: tuple[object] | None = None


def prepare(raw: bytes, max_bytes: int, signer: Signer | None = None) -> Prepared:
    message = parse_message(raw, max_bytes=max_bytes)
    signed = None
    # Automatic mail (a bounce, an auto-reply) is never a report: nothing to compare. A text the
    # signer fails on is left to the duplicate check, which says why.
    if signer is not None and not is_automatic(message).yes:
        with contextlib.suppress(Exception):
            signed = (signer(message.subject, message.text_body),)
    return Prepared(dedupe_key(raw), message, rawbytes.pack(raw), signed)
