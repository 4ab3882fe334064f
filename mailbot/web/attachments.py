"""An attachment's bytes, found again in the message's stored raw bytes.

Intake records each attachment's name, type, size and SHA-256, not its bytes (the raw message is
kept whole). To hand one out, the raw message is walked again and the part whose decoded bytes
have the recorded SHA-256 is returned: whatever the name says, only bytes that intake saw under
that entry can come out.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from email.message import Message


def find_attachment(raw: bytes, sha256: str) -> bytes | None:
    root = email.message_from_bytes(raw, policy=email.policy.compat32)
    for part in root.walk():
        for data in _candidates(part):
            if hashlib.sha256(data).hexdigest() == sha256:
                return data
    return None


def _candidates(part: Message) -> list[bytes]:
    if part.get_content_type() == "message/rfc822":
        children = [c for c in (part.get_payload() or []) if isinstance(c, Message)]
        try:
            return [b"".join(c.as_bytes() for c in children)]
        except Exception:  # an enclosed message the generator cannot write
            return []
    if part.is_multipart():
        return []
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: nothing this part can match
        return []
    return [data] if isinstance(data, bytes) else []
