"""What intake works out from a message's bytes alone, before it looks at the database. Pure.

The dedupe key, the parse and the packed bytes depend on nothing but the raw message, so they
can be worked out anywhere: in the daemon's own process, or ahead of time in a parse process
while the daemon applies the batch before (``mailbot.intake.parse_pool``). Either way the
result is the same value.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbot import rawbytes
from mailbot.mail.message import InboundMessage
from mailbot.mail.parse import dedupe_key, parse_message


@dataclass(frozen=True)
class Prepared:
    dedupe_key: str  # of the raw bytes (``mailbot.mail.dedupe``), before any keying
    message: InboundMessage  # the raw bytes parsed, as they arrived (not decrypted)
    packed: bytes  # the raw bytes as ``mailbot.rawbytes`` packs them for storage


def prepare(raw: bytes, max_bytes: int) -> Prepared:
    return Prepared(dedupe_key(raw), parse_message(raw, max_bytes=max_bytes), rawbytes.pack(raw))
