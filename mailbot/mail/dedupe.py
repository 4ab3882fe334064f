"""The dedupe key: one hash per message as its sender wrote it, whatever the way it came (IMAP,
an .eml file, an mbox export) and whatever servers added on the way."""

from __future__ import annotations

import hashlib

from mailbot.mail import canonical
from mailbot.mail.header_block import bounded_header_end

# Fields that mail servers add on the way in, and mailbox software adds in storage. A copy of
# a message delivered twice differs only in these; what the sender wrote never does.
TRACE_FIELDS = frozenset(
    {
        *("return-path", "received", "x-received", "delivered-to", "x-delivered-to"),
        "delivery-date",
        *("x-original-to", "envelope-to", "x-envelope-from", "x-envelope-to", "x-rcpt-to"),
        *("authentication-results", "x-original-authentication-results", "received-spf"),
        *("x-google-smtp-source", "x-sieve", "x-sieve-redirected-from", "x-ham-report"),
        # mbox and IMAP stores, and the mail clients that export them
        *("status", "x-status", "x-keywords", "x-uid", "x-imap", "x-imapbase", "lines"),
        *("content-length", "x-uidl", "x-account-key", "x-original-arrival-time"),
        *("x-universally-unique-identifier", "x-uniform-type-identifier"),
    }
)
TRACE_PREFIXES = (
    *("arc-", "x-spam", "x-virus", "x-rspamd-", "x-amavis-", "x-forwarded-"),
    *("x-ms-exchange-", "x-microsoft-antispam", "x-forefront-antispam"),
    *("x-mozilla-", "x-gm-", "x-gmail-", "x-apple-", "x-evolution-", "x-kmail-"),
)


def dedupe_key(raw: bytes) -> str:
    """Hex SHA-256 of the message as its sender wrote it. Never raises.

    That is the raw bytes minus a leading mbox ``From `` line and minus every header field named
    in TRACE_FIELDS or starting with one of TRACE_PREFIXES (case-insensitive), in the canonical
    form of ``mailbot.mail.canonical``: line endings, trailing whitespace, trailing blank lines
    and mbox ``>From`` quoting do not count, so a message read over IMAP, saved as an .eml file
    or exported to an mbox has one key. Everything else counts: the other fields in their order
    and folding, the body. One pass, no MIME parsing.
    """
    try:
        return _dedupe_key(raw)
    except Exception:  # not bytes after all; still give a stable answer
        return hashlib.sha256(repr(raw).encode("utf-8", "replace")).hexdigest()


def _dedupe_key(raw: bytes) -> str:
    start = 0
    if raw.startswith(b"From "):  # an mbox separator, written by the mail store
        newline = raw.find(b"\n")
        start = newline + 1 if newline != -1 else len(raw)
    end, _ = bounded_header_end(raw, start)  # the rest counts as body: still hashed
    digest = hashlib.sha256()
    for field_bytes in _header_fields(raw[start:end]):
        if not _is_trace(field_bytes):
            digest.update(canonical.header_field(field_bytes))
    for chunk in canonical.body(raw, end):
        digest.update(chunk)
    return digest.hexdigest()


def _header_fields(block: bytes) -> list[bytes]:
    """The fields of a header block, each with its continuation lines and line endings."""
    fields: list[list[bytes]] = []
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    return [b"".join(lines) for lines in fields]


def _is_trace(field_bytes: bytes) -> bool:
    name, colon, _ = field_bytes.partition(b":")
    if not colon:
        return False
    return is_trace_name(name.strip().lower().decode("ascii", "replace"))


def is_trace_name(key: str) -> bool:
    return key in TRACE_FIELDS or key.startswith(TRACE_PREFIXES)
