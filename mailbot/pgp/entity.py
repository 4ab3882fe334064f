"""MIME entities as bytes: header fields, bodies and multipart parts, cut exactly as they arrived.

A PGP/MIME signature covers the bytes of the signed part as they were sent, so nothing here
re-serialises a parsed tree: parts are cut out of the raw text at their boundaries.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

_FIELD_START = re.compile(rb"^[!-9;-~]+[ \t]*:")
_BARE_LF = re.compile(rb"(?<!\r)\n")


def split_entity(data: bytes) -> tuple[bytes, bytes]:
    """(header block, body); the header block ends with its last field's line end."""
    if data.startswith((b"\r\n", b"\n")):
        return b"", data[2:] if data.startswith(b"\r\n") else data[1:]
    found = [(at, sep) for sep in (b"\r\n\r\n", b"\n\n") if (at := data.find(sep)) != -1]
    if not found:
        return data, b""
    at, sep = min(found)
    return data[:at + len(sep) // 2], data[at + len(sep):]


def header_fields(head: bytes) -> list[tuple[str, bytes]]:
    """The fields of a header block as (lower-case name, the field's raw lines)."""
    fields: list[tuple[str, bytes]] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + line)
        elif _FIELD_START.match(line):
            name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
            fields.append((name, line if line.endswith(b"\n") else line + b"\r\n"))
    return fields


def headers_of(head: bytes) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(head)


def content_fields(name: str) -> bool:
    return name.startswith("content-") or name == "mime-version"


def split_parts(body: bytes, boundary: str) -> list[bytes] | None:
    """The parts of a multipart body, each exactly as sent (the CRLF before a delimiter belongs
    to the delimiter, RFC 2046 5.1.1); None when the closing delimiter is missing."""
    delim = re.compile(rb"(?:\A|\r?\n)--" + re.escape(boundary.encode("latin-1", "replace"))
                       + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    parts: list[bytes] = []
    start: int | None = None
    for match in delim.finditer(body):
        if start is not None:
            parts.append(body[start:match.start()])
        if match.group(1):
            return parts
        start = match.end()
    return None


def join_parts(boundary: str, parts: list[bytes]) -> bytes:
    out = b""
    for part in parts:
        out += b"--" + boundary.encode("latin-1", "replace") + b"\r\n" + part + b"\r\n"
    return out + b"--" + boundary.encode("latin-1", "replace") + b"--\r\n"


def canonical(data: bytes) -> bytes:
    """CRLF line ends, as signed data is canonicalised (RFC 3156 5)."""
    return _BARE_LF.sub(b"\r\n", data)


def merge(outer_head: bytes, inner: bytes, *, take_subject: bool) -> bytes:
    """The outer header fields (without its Content-* fields) over the inner entity. With
    ``take_subject``, a Subject in the inner header block (protected headers, RFC 9788) replaces
    the outer one."""
    inner_head, inner_body = split_entity(inner)
    inner_fields = header_fields(inner_head)
    subject = next((raw for name, raw in inner_fields if name == "subject"), None)
    kept: list[bytes] = []
    for name, raw in header_fields(outer_head):
        if content_fields(name):
            continue
        if name == "subject" and take_subject and subject is not None:
            raw = subject
            subject = None
        kept.append(raw)
    if take_subject and subject is not None:
        kept.append(subject)
    kept.append(b"MIME-Version: 1.0\r\n")
    kept.extend(raw for name, raw in inner_fields
                if content_fields(name) and name != "mime-version")
    return b"".join(kept) + b"\r\n" + inner_body
