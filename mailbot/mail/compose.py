"""Safe outgoing messages: clean headers, threading, loop marks and verifiable Message-IDs.

Everything here is pure. Header values that may come from a reporter (a subject, a display name,
a Message-ID they chose) pass through ``clean_header`` / ``clean_address`` first, so no input can
add a header field or a body line, and ``EmailMessage`` never gets the chance to raise its own
``ValueError`` on a line break halfway through building a reply.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from email import policy as email_policy
from email.header import Header
from email.headerregistry import (
    Address,
    AddressHeader,
    BaseHeader,
    HeaderRegistry,
    UnstructuredHeader,
)
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, getaddresses
from typing import Any

from mailbot.mail.headers import decode_words
from mailbot.mail.message import LOOP_HEADER

ELLIPSIS = "…"
SUBJECT_LIMIT = 250
DISPLAY_NAME_LIMIT = 100
MAX_REFERENCES = 20
MAX_ID_LENGTH = 250
TOKEN_HEX_CHARS = 16

# Characters a header line never keeps (each becomes a space), as one character class: every
# character of the Unicode categories Cc (every C0/C1 control incl. NUL, CR, LF, U+0085), Cs (lone
# surrogates, which cannot be encoded at all), Zl and Zp (U+2028, U+2029), and the bidi
# embeddings, overrides and isolates: not line breaks, but they let a subject display as
# something other than what it says. (Those categories are closed sets in Unicode; a unit test
# checks the class against unicodedata over every code point.)
DROPPED = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_DECODE_ROUNDS = 3

_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# A msg-id as it is used in practice: "<left@right>", printable ASCII, no spaces or brackets.
_MSG_ID = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")
_ANGLE_ADDR = re.compile(r"<([^<>]*)>")
_ID_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,75}$")
_AUTO_SUBMITTED = re.compile(r"^[a-z][a-z-]{0,30}$")

# Headers compose() sets itself; extra_headers may not replace or duplicate them.
_RESERVED = frozenset(
    name.lower()
    for name in (
        *("From", "To", "Cc", "Bcc", "Sender", "Reply-To", "Return-Path", "Subject", "Date"),
        *("Message-ID", "In-Reply-To", "References", "Auto-Submitted", LOOP_HEADER),
        *("X-Auto-Response-Suppress", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"),
    )
)


# ---------------------------------------------------------------------------------------------
# Cleaning


def clean_header(value: str, limit: int = 200) -> str:
    """One line of text, safe for any header: no control or line-break characters, single spaces,
    at most ``limit`` characters (an ellipsis marks a cut).

    RFC 2047 encoded words are decoded (as a mail reader would show them) and cleaned too: the
    email package decodes them in any value assigned to a header and would write a decoded
    ``=?utf-8?q?hi=0D=0ABcc:_x?=`` out as a real line break and a real Bcc header. They are
    decoded by the same decoder that reads incoming mail (``headers.decode_words``), so a subject
    echoed in a receipt reads as the case shows it; whatever is left that could start an encoded
    word is defused, so the email package finds nothing more to decode.
    """
    text = _one_line(value)
    for _ in range(_DECODE_ROUNDS):
        if "=?" not in text:
            break
        decoded = _one_line(decode_words(text))
        if decoded == text:
            break
        text = decoded
    # Whatever still looks like the start of an encoded word is left as text, visibly.
    text = text.replace("=?", "= ?")
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def _one_line(value: str) -> str:
    return " ".join(DROPPED.sub(" ", value).split())


def clean_address(value: str) -> Address:
    """``"Name <local@domain>"`` or ``local@domain`` as a header-safe Address.

    Raises ValueError when the value does not hold exactly one usable address: none, several,
    a quoted or non-ASCII local part (it would need SMTPUTF8), or a malformed domain. A non-ASCII
    domain is converted to its IDNA (``xn--``) form.
    """
    # Only line breaks and controls go here: RFC 2047 decoding applies to the display name alone
    # (below), never to the address, and decoding the whole value could swallow the address.
    cleaned = _one_line(value)
    pairs = [(n, a) for n, a in getaddresses([cleaned]) if n or a]
    if len(pairs) != 1:
        raise ValueError(f"expected exactly one address, got {value!r}")
    name, addr = pairs[0]
    brackets = _ANGLE_ADDR.findall(cleaned)
    if brackets and brackets[-1].strip() != addr:
        # ``Bcc: x@evil.test( <jane@example.org>`` parses as x@evil.test: a group label and an
        # open comment took the bracketed address away. Refuse rather than guess.
        raise ValueError(f"ambiguous address {value!r}")
    if addr not in cleaned or "=?" in addr:
        # The parser glued or unquoted pieces (``bob@exa mple.org``): not what was written; or an
        # encoded word posing as an address, which some readers would decode.
        raise ValueError(f"unusable address {value!r}")
    local, at, domain = addr.rpartition("@")
    if not at or not _LOCAL_PART.match(local) or len(local) > 64:
        raise ValueError(f"unusable address {value!r}")
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None or len(local) + 1 + len(ascii_domain) > 254:
        raise ValueError(f"unusable address {value!r}")
    return Address(
        display_name=clean_header(name, DISPLAY_NAME_LIMIT), username=local, domain=ascii_domain
    )


def _ascii_domain(domain: str) -> str | None:
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if domain else ""
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if not ascii_domain or len(ascii_domain) > 253:
        return None
    if not all(_DOMAIN_LABEL.match(label) for label in labels):
        return None
    return ascii_domain.lower()


def clean_message_ids(ids: list[str]) -> list[str]:
    """The well-formed ``<left@right>`` ids among ``ids``, in order, without duplicates."""
    seen: set[str] = set()
    out: list[str] = []
    for raw in ids:
        candidate = raw.strip() if isinstance(raw, str) else ""
        if len(candidate) > MAX_ID_LENGTH or not _MSG_ID.match(candidate):
            continue
        if candidate.count("@") != 1 or "=?" in candidate or candidate in seen:
            continue
        seen.add(candidate)
        out.append(candidate)
    return out


# ---------------------------------------------------------------------------------------------
# Message-IDs that carry a verifiable case token


def make_message_id(case_id: str, kind: str, key: bytes, domain: str, nonce: str) -> str:
    """``<{case_id}.{kind}.{nonce}.{token}@{domain}>``, the same for the same inputs.

    The token is an HMAC of the case id, so a reply to our mail can be matched to its case
    even when the stored ids are gone, and a stranger cannot forge one for another case.
    """
    for label, part in (("case_id", case_id), ("kind", kind), ("nonce", nonce)):
        if not _ID_PART.match(part):
            raise ValueError(f"{label} must be 1-64 letters, digits, '-' or '_', got {part!r}")
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None:
        raise ValueError(f"unusable Message-ID domain {domain!r}")
    return f"<{case_id}.{kind}.{nonce}.{_token(case_id, key)}@{ascii_domain}>"


def verify_message_id(message_id: str, key: bytes) -> str | None:
    """The case id of one of our Message-IDs whose token verifies under ``key``; else None.

    Never raises: any junk, any other key and an empty key all give None.
    """
    if not key or not isinstance(message_id, str) or len(message_id) > MAX_ID_LENGTH:
        return None
    text = message_id.strip()
    if not (text.startswith("<") and text.endswith(">")):
        return None
    local, at, _domain = text[1:-1].rpartition("@")
    parts = local.split(".")
    if not at or len(parts) != 4 or not all(_ID_PART.match(p) for p in parts):
        return None
    case_id, _kind, _nonce, token = parts
    expected = _token(case_id, key)
    if not hmac.compare_digest(expected.encode("ascii"), token.lower().encode("ascii")):
        return None
    return case_id


def _token(case_id: str, key: bytes) -> str:
    # The prefix keeps this HMAC apart from any other use the same key might be put to.
    mac = hmac.new(key, b"mailbot message-id\x00" + case_id.encode("ascii"), hashlib.sha256)
    return mac.hexdigest()[:TOKEN_HEX_CHARS]


# ---------------------------------------------------------------------------------------------
# Composing


class _MessageIdListHeader(UnstructuredHeader, BaseHeader):
    """In-Reply-To / References: folded only between ids, never turned into encoded words.

    The stock unstructured header encodes any token longer than a line (RFC 2047), and an
    encoded Message-ID no longer threads. Values reaching this class are already validated ids.
    """

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        super().parse(value, kwds)
        kwds["decoded"] = value  # exactly as given: never RFC 2047-decoded

    def fold(self, *, policy: Policy) -> str:
        limit = policy.max_line_length or 78
        lines: list[str] = []
        line = f"{self.name}:"
        for token in str(self).split():
            if len(line) + 1 + len(token) > limit and line != f"{self.name}:":
                lines.append(line)
                line = ""
            line += " " + token
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


# typeshed types AddressHeader.init and BaseHeader.init differently; at run time the registry
# combines exactly these two classes, as it does for its own address headers.
class _AddressListHeader(AddressHeader, BaseHeader):  # type: ignore[misc]
    """From / To, written out from the Address objects themselves.

    The stock folder drops the quotes of a long quoted display name when it breaks the line:
    ``"Bcc: x@evil.test" <jane@example.org>`` came out as a group ``Bcc:`` holding x@evil.test.
    Here short ASCII names are always quoted, anything else becomes RFC 2047 encoded words, and
    lines break only between addresses or between encoded words.
    """

    max_count = 1

    def fold(self, *, policy: Policy) -> str:
        entries = [_format_address(a, policy.linesep) for a in self.addresses]
        return f"{self.name}: " + f",{policy.linesep} ".join(entries) + policy.linesep


_QUOTED_NAME_LIMIT = 60


def _format_address(address: Address, linesep: str) -> str:
    name = address.display_name
    if not name:
        return address.addr_spec
    if name.isascii() and len(name) <= _QUOTED_NAME_LIMIT:
        phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        phrase = Header(name, "utf-8").encode(linesep=linesep, maxlinelen=76)
    return f"{phrase} <{address.addr_spec}>"


class _BuiltOnceRegistry(HeaderRegistry):
    """The stdlib's registry builds a new header class with type() on every lookup, about 27 per
    receipt; the class for a name never changes, so each is built once."""

    def __init__(self) -> None:
        super().__init__()
        self._built: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        super().map_to_type(name, cls)
        self._built.clear()

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = super().__getitem__(name)
        return built


def _policy() -> Policy:
    registry = _BuiltOnceRegistry()
    registry.map_to_type("in-reply-to", _MessageIdListHeader)
    registry.map_to_type("references", _MessageIdListHeader)
    registry.map_to_type("from", _AddressListHeader)
    registry.map_to_type("to", _AddressListHeader)
    # 7bit: the body is quoted-printable when it is not ASCII, so no relay needs 8BITMIME.
    return email_policy.SMTP.clone(cte_type="7bit", header_factory=registry)


_POLICY = _policy()


def compose(
    *,
    from_address: str,
    to: list[str],
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    in_reply_to: str | None,
    references: list[str],
    auto_submitted: str,
    date: datetime,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """A complete RFC 5322 message (CRLF line ends, 7-bit) ready for SMTP DATA.

    Raises ValueError for what the caller controls: unusable From/To addresses, a malformed own
    Message-ID, a naive date, a bad Auto-Submitted keyword or extra header name. Reporter text
    (subject, display names, the ids being answered) is cleaned and never raises.
    """
    sender = clean_address(from_address)
    recipients = [clean_address(a) for a in to]
    if not recipients:
        raise ValueError("a message needs at least one recipient")
    own_id = message_id.strip()
    if clean_message_ids([own_id]) != [own_id]:
        raise ValueError(f"malformed Message-ID {message_id!r}")
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("the Date of an outgoing message must be timezone-aware")
    if not _AUTO_SUBMITTED.match(auto_submitted):
        raise ValueError(f"malformed Auto-Submitted keyword {auto_submitted!r}")

    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    msg["To"] = recipients
    msg["Subject"] = clean_header(subject, SUBJECT_LIMIT)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = own_id
    _set_threading(msg, in_reply_to, references)
    msg["Auto-Submitted"] = auto_submitted
    msg[LOOP_HEADER] = sender.addr_spec
    # Exchange and Outlook honour this instead of RFC 3834: no out-of-office replies to us.
    msg["X-Auto-Response-Suppress"] = "All"
    for name, value in (extra_headers or {}).items():
        _check_extra_header_name(name)
        msg[name] = clean_header(value, 900)
    _set_body(msg, text, html)
    return msg.as_bytes()


def _set_threading(msg: EmailMessage, in_reply_to: str | None, references: list[str]) -> None:
    parent = clean_message_ids([in_reply_to]) if in_reply_to else []
    chain = clean_message_ids([*references, *parent])
    if parent:
        # The parent ends the chain (RFC 5322 3.6.4), wherever it appeared before.
        chain = [i for i in chain if i != parent[0]] + parent
    if len(chain) > MAX_REFERENCES:
        # Keep the thread's root: several clients thread on it when the middle is missing.
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    if parent:
        msg["In-Reply-To"] = parent[0]
    if chain:
        msg["References"] = " ".join(chain)


def _check_extra_header_name(name: str) -> None:
    if not _HEADER_NAME.match(name) or name.lower() in _RESERVED:
        raise ValueError(f"extra header {name!r} is malformed or set by compose() itself")


def _set_body(msg: EmailMessage, text: str, html: str | None) -> None:
    msg.set_content(_encodable(_normalise_newlines(text)), subtype="plain", charset="utf-8")
    if html is not None:
        msg.add_alternative(_encodable(_normalise_newlines(html)), subtype="html", charset="utf-8")


def _normalise_newlines(text: str) -> str:
    # A lone CR is a line break to some readers and not to others; make every break explicit.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _encodable(text: str) -> str:
    # Lone surrogates (from a badly decoded input) cannot be written as UTF-8 at all, and a NUL
    # byte in DATA is cut short or refused by some servers.
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
