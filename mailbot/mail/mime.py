"""The MIME tree of one message: its parts, attachments and text, walked without recursion.

Pure and bounded: at most MAX_PARTS parts and MAX_DEPTH levels are examined, payloads are decoded
from the stored text without the stdlib's copies, and text is capped at MAX_TEXT characters.
What goes wrong on the way is added to the message's ``Defects``.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from mailbot.mail.charsets import decode_text
from mailbot.mail.defects import Defects
from mailbot.mail.headers import charset_problem, clean, decode_words, fix_8bit
from mailbot.mail.html_text import html_to_text
from mailbot.mail.message import Attachment

MAX_TEXT = 1024 * 1024  # characters of text_body
MAX_PARTS = 1000  # MIME parts examined
MAX_DEPTH = 64  # MIME nesting levels examined
MAX_FILENAME = 255

BODY_JUNK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]+")


# ---------------------------------------------------------------------------------------------
# Walking the MIME tree: part types, attachments, text parts, the sender's own part, defects


@dataclass
class Walk:
    part_types: list[str] = field(default_factory=list)  # outside enclosed messages
    attachments: list[Attachment] = field(default_factory=list)
    plain: list[Message] = field(default_factory=list)
    html: list[Message] = field(default_factory=list)
    other: list[Message] = field(default_factory=list)  # text of last resort (see walk_parts)
    own: Message | None = None  # the first text part the sender wrote (see owntext)
    _texts: dict[int, str] = field(default_factory=dict)
    _html_texts: dict[str, str] = field(default_factory=dict)

    def text_of(self, part: Message, defects: Defects) -> str:
        """The decoded text of one of this walk's parts, decoded once however often asked."""
        key = id(part)
        if key not in self._texts:
            self._texts[key] = leaf_text(part, defects)
        return self._texts[key]

    def html_as_text(self, html: str, defects: Defects) -> str:
        """``html_to_text``, run once per distinct HTML (the body and the own text of an HTML
        message are usually the same one part)."""
        if html not in self._html_texts:
            self._html_texts[html] = html_to_text(html, defects)
        return self._html_texts[html]


ENCLOSED = ("message/rfc822", "message/global", "message/news")


@dataclass(frozen=True)
class _Place:
    """Where a part sits: how deep, inside an enclosed message, the signature of a signed part."""

    depth: int = 0
    enclosed: bool = False
    signature: bool = False


def walk_parts(root: Message, defects: Defects) -> Walk:
    """Depth-first in document order, iterative (a recursive walk is what deep nesting breaks),
    capped. Every part is read once, here, for everything intake needs of it:

    - Text: a leaf whose subtype is ``plain`` or ``html`` (``application/plain`` too, as some
      S/MIME signers label the text), that is neither an attachment (disposition or filename)
      nor the signature of a ``multipart/signed``. A ``text/plain`` or ``text/html`` part
      marked ``inline`` that carries a filename is text and an attachment both.
    - Enclosed text: whatever ``message/*`` encloses (a forwarded message, the returned part
      of a bounce, a ``message/partial`` fragment) is read as text too, but is never the
      sender's own part and adds no part types.
    - Attachments: every other leaf, and each enclosed message sent with a disposition or name.
    - Text of last resort, read only when there is no text part: a multipart whose boundary
      never came, and an unnamed attachment of 7-bit text (an armored OpenPGP message that
      could not be opened).
    - The sender's own part: the first text part outside enclosed messages that is not named.
    """
    walk = Walk()
    stack: list[tuple[Message, _Place]] = [(root, _Place())]
    seen = 0
    while stack:
        part, place = stack.pop()
        seen += 1
        if seen > MAX_PARTS:
            defects.add(f"over {MAX_PARTS} MIME parts: only the first {MAX_PARTS} examined")
            break
        ctype = part_content_type(part)
        if not place.enclosed:
            walk.part_types.append(ctype)
        for defect in part.defects:
            defects.add(type(defect).__name__.lstrip("_"))
        if part.is_multipart():
            if ctype in ENCLOSED and _is_named(*_disposition(part)):
                walk.attachments.append(_enclosed_attachment(part, ctype, defects))
            if place.depth >= MAX_DEPTH:
                defects.add(f"MIME nesting over {MAX_DEPTH} levels: deeper parts not examined")
            elif ctype.startswith("multipart/") or _encloses_parts(ctype):
                stack.extend(reversed(_children_placed(part, ctype, place)))
            continue
        _leaf(part, ctype, place, walk, defects)
    return walk


def _encloses_parts(ctype: str) -> bool:
    # message/delivery-status holds blocks of fields, not parts (the stdlib makes them
    # messages of their own): nothing in them is text or attachment.
    return ctype.startswith("message/") and ctype != "message/delivery-status"


def _children_placed(part: Message, ctype: str, place: _Place) -> list[tuple[Message, _Place]]:
    kids = [c for c in children(part) if isinstance(c, Message)]
    enclosed = place.enclosed or ctype.startswith("message/")
    signed = ctype == "multipart/signed"  # RFC 1847: the content, then its signature
    return [
        (child, _Place(place.depth + 1, enclosed, signed and index > 0))
        for index, child in enumerate(kids)
    ]


def children(part: Message) -> list[Any]:
    payload = part.get_payload()
    return payload if isinstance(payload, list) else []


def _disposition(part: Message) -> tuple[str | None, str]:
    """(Content-Disposition's value or None, the filename or "")."""
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    return disposition, _filename(part)


def _is_named(disposition: str | None, filename: str) -> bool:
    """An attachment by its Content-Disposition or its filename."""
    return disposition == "attachment" or bool(filename)


def _leaf(part: Message, ctype: str, place: _Place, walk: Walk, defects: Defects) -> None:
    disposition, filename = _disposition(part)
    named = _is_named(disposition, filename)
    subtype = ctype.partition("/")[2]
    if named:
        walk.attachments.append(_attachment(payload_bytes(part, defects), ctype, filename))
        if not (disposition == "inline" and ctype in ("text/plain", "text/html")):
            return
    elif ctype.startswith("multipart/"):
        walk.other.append(part)  # its boundary never came: the body is still its text
        return
    elif place.signature or subtype not in ("plain", "html"):
        data = payload_bytes(part, defects)
        walk.attachments.append(_attachment(data, ctype, filename))
        if not place.signature and data.isascii() and b"\x00" not in data and data.strip():
            walk.other.append(part)  # 7-bit text, as an armored OpenPGP message is
        return
    (walk.plain if subtype == "plain" else walk.html).append(part)
    if walk.own is None and not named and not place.enclosed:
        walk.own = part
    problem = charset_problem(part_charset(part))
    if problem:
        defects.add(problem)


def _attachment(data: bytes, ctype: str, filename: str) -> Attachment:
    return Attachment(
        filename=filename,
        content_type=ctype,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _enclosed_attachment(part: Message, ctype: str, defects: Defects) -> Attachment:
    """A forwarded message sent as an attachment: its bytes as the generator writes them.

    Over the walk's own bounds (MAX_DEPTH levels, MAX_PARTS parts) the generator is not run:
    it folds every header of every level again, recursively (0.2 s for 3,000 nested messages).
    Size and SHA-256 are then those of the stored header fields and leaf payloads, in order
    (see _stored_text), and a defect says so.
    """
    kids = [child for child in children(part) if isinstance(child, Message)]
    if all(_within_bounds(child) for child in kids):
        try:
            data = b"".join(child.as_bytes() for child in kids)
        except Exception as exc:
            defects.add(f"enclosed message unwritable ({type(exc).__name__})")
            data = b""
        size, digest = len(data), hashlib.sha256(data).hexdigest()
    else:
        defects.add(
            f"enclosed message over {MAX_DEPTH} levels or {MAX_PARTS} parts: its size and "
            "sha256 are of its stored header fields and payloads, not of its bytes"
        )
        size, digest = _stored_text_digest(kids)
    return Attachment(filename=_disposition(part)[1], content_type=ctype, size=size, sha256=digest)


def _within_bounds(root: Message) -> bool:
    """At most MAX_DEPTH levels and MAX_PARTS parts; stops counting as soon as it is not."""
    stack: list[tuple[Message, int]] = [(root, 0)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        seen += 1
        if seen > MAX_PARTS or depth > MAX_DEPTH:
            return False
        stack.extend((c, depth + 1) for c in children(part) if isinstance(c, Message))
    return True


def _stored_text_digest(roots: list[Message]) -> tuple[int, str]:
    """(size, hex SHA-256) of every part's header fields as stored (``name: value`` lines, a
    blank line) followed by its payload text, depth first. Linear in the bytes, no recursion,
    no refolding; boundaries, preambles and epilogues are left out."""
    digest = hashlib.sha256()
    size = 0
    stack = list(reversed(roots))
    while stack:
        part = stack.pop()
        chunks = [f"{name}: {value}\n" for name, value in part.raw_items()]
        chunks.append("\n")
        payload = getattr(part, "_payload", None)  # the stored text; the public getter copies it
        if isinstance(payload, str):
            chunks.append(payload)
        for chunk in chunks:
            data = _stored_bytes(chunk)
            size += len(data)
            digest.update(data)
        stack.extend(reversed([c for c in children(part) if isinstance(c, Message)]))
    return size, digest.hexdigest()


def _stored_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")  # 8-bit bytes come back as they were
    except UnicodeEncodeError:  # a surrogate that no byte became
        return text.encode("utf-8", "replace")


def payload_bytes(part: Message, defects: Defects, limit: int | None = None) -> bytes:
    """The decoded payload of a leaf part; with ``limit``, at least its first ``limit`` bytes.

    Base64, quoted-printable and unencoded payloads are decoded here straight from the stored
    text: the stdlib's get_payload(decode=True) makes four or five copies of a base64 payload on
    the way (about 4.5x its size), too many for a 25 MB attachment.
    """
    text = getattr(part, "_payload", None)  # the stored text; the public getter copies it
    if isinstance(text, str):
        cte = _transfer_encoding(part)
        try:
            data = _decode_transfer(text, cte, limit)
        except (ValueError, UnicodeError):  # binascii.Error is a ValueError
            data = None
        if data is not None:
            return data
    try:
        decoded = part.get_payload(decode=True)
    except Exception as exc:
        defects.add(f"payload undecodable ({type(exc).__name__})")
        return b""
    return decoded if isinstance(decoded, bytes) else b""


def _decode_transfer(text: str, cte: str, limit: int | None) -> bytes | None:
    """None for encodings left to the stdlib (uuencode and unknown ones)."""
    if cte == "base64":
        if limit is not None:
            cut = text.rfind("\n", 0, limit * 2)  # whole lines: 4-character groups stay whole
            text = text[: cut + 1] if cut != -1 and len(text) > limit * 2 else text
        try:
            return binascii.a2b_base64(text)  # reads an ASCII str in place, without a copy
        except binascii.Error:
            raise
        except ValueError:  # 8-bit junk in the text: non-alphabet bytes are skipped anyway
            return binascii.a2b_base64(text.encode("ascii", "surrogateescape"))
    if cte == "quoted-printable":
        text = text if limit is None else text[: limit * 3]
        return binascii.a2b_qp(text.encode("ascii", "surrogateescape"))
    if cte in ("", "7bit", "8bit", "binary"):
        text = text if limit is None else text[:limit]
        return text.encode("ascii", "surrogateescape")
    return None


def _transfer_encoding(part: Message) -> str:
    try:
        return str(part.get("content-transfer-encoding", "")).strip().lower()
    except Exception:
        return "unknown"


def part_content_type(part: Message) -> str:
    try:
        return clean(part.get_content_type(), 100).lower() or "text/plain"
    except Exception:
        return "application/octet-stream"


def _filename(part: Message) -> str:
    """For display only: decoded, no controls, no path separators."""
    try:
        name = part.get_filename()
    except Exception:
        return ""
    if not isinstance(name, str):
        return ""
    text = clean(decode_words(fix_8bit(name[: MAX_FILENAME * 4])), MAX_FILENAME)
    return text.replace("/", "_").replace("\\", "_")


# ---------------------------------------------------------------------------------------------
# Body text


def body_text(walk: Walk, defects: Defects) -> str:
    """The plain parts; else the HTML parts as text; else whatever text there is. Parts are
    decoded only when their kind is the one read."""
    text = _join([walk.text_of(p, defects) for p in walk.plain])
    if not text.strip() and walk.html:
        text = walk.html_as_text(_join([walk.text_of(p, defects) for p in walk.html]), defects)
    if not text.strip():
        text = _join([walk.text_of(p, defects) for p in walk.other])
    text = BODY_JUNK.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) > MAX_TEXT:
        defects.add(f"text body over {MAX_TEXT} characters: truncated")
    return text[:MAX_TEXT]


def leaf_text(part: Message, defects: Defects) -> str:
    # UTF-8 takes at most 4 bytes per character: more than this cannot survive the cap.
    data = payload_bytes(part, defects, MAX_TEXT * 4)[: MAX_TEXT * 4]
    text, problem = decode_text(data, part_charset(part))
    if problem:
        defects.add(problem)
    return text


def part_charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def _join(texts: list[str]) -> str:
    out: list[str] = []
    size = 0
    for text in texts:
        if not text.strip():
            continue
        out.append(text[: MAX_TEXT + 1 - size])
        size += len(out[-1])
        if size > MAX_TEXT:
            break
    return "\n\n".join(out)
