"""Open what a message seals: PGP/MIME (RFC 3156) and inline PGP, nested as senders nest them.

``open_message`` walks a message's MIME entities as bytes and gives back the message as its
sender meant it to be read, with what it found on the way:

- ``multipart/encrypted`` (application/pgp-encrypted): decrypted; the decrypted entity takes the
  place of the encrypted one, its Subject (protected headers) the place of the outer one;
- ``multipart/signed`` (application/pgp-signature): the first part verified against the
  detached signature over its exact bytes, then opened in turn (signed-then-encrypted,
  encrypted-then-signed and signed-inside-encrypted all end here);
- inline PGP in a ``text/plain`` part (not an attachment): each ``BEGIN PGP MESSAGE`` block
  decrypted, each ``BEGIN PGP SIGNED MESSAGE`` block verified, replaced by its text;
- an enclosed message (a forward as attachment) opened the same way, its signatures recorded
  as the enclosed message's, never as the sender's;
- public keys (``application/pgp-keys`` parts, ``.asc`` attachments holding a key block)
  collected, outside enclosed messages.

A signature is the sender's (``Opened.signature``) only when it covers the whole message: it
sits at the root, or under nothing but other encryption and signature layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mailbot.intake.unwrap import Signature
from mailbot.pgp.entity import (
    canonical,
    headers_of,
    join_parts,
    merge,
    split_entity,
    split_parts,
)
from mailbot.pgp.gpg import Gpg, PgpError

MAX_DEPTH = 8  # entity nesting opened at most
MAX_BLOCKS = 5  # inline blocks per text part
MAX_KEYS = 5  # key attachments collected per message
_INLINE = re.compile(
    rb"-----BEGIN PGP (MESSAGE|SIGNED MESSAGE)-----.*?"
    rb"-----END PGP (?:MESSAGE|SIGNATURE)-----[ \t]*", re.DOTALL)
_KEY_BLOCK = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"
SMIME_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})


@dataclass
class Opened:
    """What ``open_message`` found; ``data`` is the readable message."""

    data: bytes
    encrypted: bool = False
    decrypted: int = 0
    problems: list[str] = field(default_factory=list)
    signature: Signature | None = None  # the sender's, covering the whole message
    signatures: list[dict[str, Any]] = field(default_factory=list)  # every one, for the record
    keys: list[bytes] = field(default_factory=list)
    protected_subject: bool = False


@dataclass(frozen=True)
class _Where:
    depth: int
    whole: bool  # this entity is all of the sender's message
    enclosed: bool  # inside an enclosed message
    root: bool  # the message itself (its header block is the message's)


def open_message(raw: bytes, gpg: Gpg, *, max_key_bytes: int) -> Opened:
    found = Opened(data=raw)
    found.data = _open(raw, gpg, found, _Where(0, True, False, True), max_key_bytes)
    return found


def _open(data: bytes, gpg: Gpg, found: Opened, where: _Where, max_key_bytes: int) -> bytes:
    if where.depth > MAX_DEPTH:
        return data
    head, body = split_entity(data)
    headers = headers_of(head)
    ctype = headers.get_content_type()
    protocol = str(headers.get_param("protocol", "") or "").lower()
    boundary = headers.get_boundary()
    deeper = _Where(where.depth + 1, where.whole, where.enclosed, False)
    parts = split_parts(body, boundary) if boundary and ctype.startswith("multipart/") else None
    pgp_mime = ctype == "multipart/encrypted" and protocol == "application/pgp-encrypted"
    if pgp_mime or (parts is not None and _mangled(parts)):
        # A multipart/mixed of [empty text], pgp-encrypted, octet-stream is PGP/MIME that
        # Exchange and some list servers rewrote on the way; it opens like the real thing.
        inner = _decrypt_pgp_mime(parts[-2:] if parts else None, gpg, found, where)
        if inner is None:
            return data
        opened = _open(inner, gpg, found, deeper, max_key_bytes)
        if where.root or _is_message(head):
            found.protected_subject |= b"subject:" in split_entity(opened)[0].lower()
            return merge(head, opened, take_subject=True)
        return opened
    if ctype in SMIME_TYPES and where.whole and not where.enclosed:
        # Enveloped (encrypted) or opaque-signed: either way the text is inside the PKCS#7
        # blob, which only OpenPGP's counterpart here could have opened.
        kind = str(headers.get_param("smime-type", "") or "").lower()
        found.encrypted |= kind != "signed-data"
        found.problems.append(f"S/MIME ({kind or 'pkcs7-mime'}): its content is not readable "
                              "here (only OpenPGP is decrypted and verified)")
        return data
    signed = ctype == "multipart/signed" and protocol == "application/pgp-signature"
    if signed and parts and len(parts) >= 2:
        signature = _verify_detached(parts[0], parts[1], gpg)
        _record(found, signature, "pgp/mime", where)
        opened = _open(parts[0], gpg, found, deeper, max_key_bytes)
        return merge(head, opened, take_subject=where.root) if where.root else opened
    if ctype.startswith("multipart/") and boundary:
        return _open_children(head, body, boundary, gpg, found, where, max_key_bytes)
    if ctype in ("message/rfc822", "message/global"):
        inside = _Where(where.depth + 1, False, True, True)
        opened = _open(body, gpg, found, inside, max_key_bytes)
        return data if opened == body else head + b"\r\n" + opened
    _collect_key(headers, ctype, body, found, where, max_key_bytes)
    if ctype == "text/plain" and b"-----BEGIN PGP " in body and not _attachment(headers):
        return _open_inline(head, headers, body, gpg, found, where)
    return data


def _is_message(head: bytes) -> bool:
    return any(name in head.lower() for name in (b"\nfrom:", b"\nsubject:")) or \
        head.lower().startswith((b"from:", b"subject:"))


def _open_children(head: bytes, body: bytes, boundary: str, gpg: Gpg, found: Opened,
                   where: _Where, max_key_bytes: int) -> bytes:
    parts = split_parts(body, boundary)
    if not parts:
        return head + b"\r\n" + body
    child = _Where(where.depth + 1, False, where.enclosed, False)
    opened = [_open(part, gpg, found, child, max_key_bytes) for part in parts]
    if opened == parts:
        return head + b"\r\n" + body
    return head + b"\r\n" + join_parts(boundary, opened)


def _mangled(parts: list[bytes]) -> bool:
    if len(parts) != 3:
        return False
    types = [headers_of(split_entity(p)[0]).get_content_type() for p in parts]
    return types == ["text/plain", "application/pgp-encrypted", "application/octet-stream"] \
        and not split_entity(parts[0])[1].strip()


def _decrypt_pgp_mime(parts: list[bytes] | None, gpg: Gpg, found: Opened,
                      where: _Where) -> bytes | None:
    """The decrypted entity, or None (with the problem recorded). What claims to be encrypted
    and cannot be opened counts as encrypted; what opens counts as encrypted only when gpg
    decrypted it (a signed message dressed as an encrypted one is not)."""
    if not parts or len(parts) < 2:
        found.encrypted = True
        found.problems.append("broken PGP/MIME structure (no encrypted part)")
        return None
    cipher = _decoded(parts[1])
    try:
        result = gpg.decrypt(cipher)
    except PgpError as exc:
        found.encrypted = True
        found.problems.append(str(exc))
        return None
    if not result.ok:
        found.encrypted = True
        found.problems.append(result.problem)
        return None
    found.encrypted |= result.encrypted
    found.decrypted += 1 if result.encrypted else 0
    if result.signature is not None:
        _record(found, result.signature, "pgp/mime", where)
    return result.data


def _verify_detached(signed: bytes, signature_part: bytes, gpg: Gpg) -> Signature:
    try:
        return gpg.verify_detached(canonical(signed), _decoded(signature_part))
    except PgpError as exc:
        return Signature("error", fingerprint=str(exc)[:0])


def _open_inline(head: bytes, headers: Any, body: bytes, gpg: Gpg, found: Opened,
                 where: _Where) -> bytes:
    text = _decoded(head + b"\r\n" + body)
    charset = str(headers.get_content_charset() or "utf-8")
    pieces: list[bytes] = []
    last = 0
    blocks = list(_INLINE.finditer(text))[:MAX_BLOCKS]
    for match in blocks:
        pieces.append(text[last:match.start()])
        last = match.end()
        encrypted = match.group(1) == b"MESSAGE"
        try:
            result = gpg.decrypt(match.group(0))
        except PgpError as exc:
            found.encrypted |= encrypted
            found.problems.append(str(exc))
            pieces.append(match.group(0))
            continue
        if not result.ok:
            if encrypted:  # an armored message gpg cannot open: taken as encrypted to someone
                found.encrypted = True
                found.problems.append(result.problem)
            pieces.append(match.group(0))
            continue
        found.encrypted |= result.encrypted
        found.decrypted += 1 if result.encrypted else 0
        if result.signature is not None:
            whole = where.whole and len(blocks) == 1 and not (
                text[:match.start()].strip() or text[match.end():].strip())
            _record(found, result.signature, "inline", _Where(where.depth, whole,
                                                             where.enclosed, where.root))
        pieces.append(result.data.decode("utf-8", "replace").encode(charset, "replace")
                      if charset.lower() not in ("utf-8", "utf8") else result.data)
    if not blocks:
        return head + b"\r\n" + body
    pieces.append(text[last:])
    clear = canonical(b"".join(pieces))
    fields = [line for line in head.splitlines(keepends=True)]
    kept = b"".join(f for f in _without(fields, ("content-type", "content-transfer-encoding")))
    return (kept + f'Content-Type: text/plain; charset="{_safe(charset)}"\r\n'.encode()
            + b"Content-Transfer-Encoding: 8bit\r\n\r\n" + clear)


def _without(lines: list[bytes], names: tuple[str, ...]) -> list[bytes]:
    out: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        dropping = name in names
        if not dropping:
            out.append(line)
    return out


def _safe(charset: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]", "", charset)[:40] or "utf-8"


def _decoded(part: bytes) -> bytes:
    """A part's body with its Content-Transfer-Encoding undone."""
    from email import message_from_bytes
    from email.policy import compat32

    message = message_from_bytes(part, policy=compat32)
    payload = message.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else split_entity(part)[1]


def _attachment(headers: Any) -> bool:
    disposition = str(headers.get("content-disposition", "")).lower()
    return disposition.startswith("attachment") or bool(headers.get_filename())


def _collect_key(headers: Any, ctype: str, body: bytes, found: Opened, where: _Where,
                 max_key_bytes: int) -> None:
    if where.enclosed or len(found.keys) >= MAX_KEYS:
        return
    filename = str(headers.get_filename() or "").lower()
    if ctype == "application/pgp-keys" or (
            filename.endswith((".asc", ".pgp", ".gpg", ".key")) and _KEY_BLOCK in body[:4096]):
        if len(body) > max_key_bytes * 2:  # base64 at most doubles it
            found.keys.append(b"")  # recorded as too large
            return
        data = _decoded(_header_block(headers) + b"\r\n" + body)
        found.keys.append(data)


def _header_block(headers: Any) -> bytes:
    cte = str(headers.get("content-transfer-encoding", "7bit"))
    return f"Content-Transfer-Encoding: {_safe(cte)}\r\n".encode()


def _record(found: Opened, signature: Signature, how: str, where: _Where) -> None:
    found.signatures.append({
        "status": signature.status, "fingerprint": signature.fingerprint, "how": how,
        "covers": "enclosed message" if where.enclosed else
        ("whole message" if where.whole else "part of the message"),
    })
    if where.whole and not where.enclosed and found.signature is None:
        found.signature = signature
