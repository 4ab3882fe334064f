"""Address fields (From, To, Cc, Reply-To) -> mailboxes, strictly and in linear time.

A small RFC 5322 address-list parser of our own: the stdlib's header parser is quadratic on
some inputs (8 KB of ``"`` took 3 s) and lenient where we must not be. It reads the *raw*
value: encoded words are only ever decoded inside a display name, so
``=?utf-8?q?alice=40example.com?= <evil@x>`` is evil@x and nothing else.

Accepted: ``addr-spec``, ``display-name <addr-spec>``, groups (``team: a@x, b@y;``), comments
and folding white space anywhere, obsolete dots in phrases and local parts. Rejected as
unusable: quoted local parts (a second ``@`` hides there), domain literals, source routes,
empty ``<>``, two addresses in one angle, text after an address, unbalanced brackets, quotes or
parentheses, control characters in an address.

A display name is only ever shown, so it may hold anything but a line break: controls (NUL
included) and bidi marks are cleaned away when it is made display text. A field unusable as
written is read again in the ways ``address_tokens.py`` describes (raw double-byte text, encoded
words holding specials, raw ISO-2022-JP); each of them widens only what counts as display text.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

from mailbot.mail.address_tokens import Token, readings, tokens
from mailbot.mail.headers import clean, decode_words, fix_8bit, unfold
from mailbot.mail.message import Address

MAX_ADDRESS_FIELD = 8 * 1024  # characters of an address field that are parsed at all
MAX_ADDRESS = 254  # characters of one address: what an SMTP path can carry (RFC 5321 4.5.3.1)

_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\u0080-\U0010ffff]{1,64}")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9_\-\u0080-\U0010ffff]{1,63}\.)*[A-Za-z0-9_\-\u0080-\U0010ffff]{1,63}"
)


class _Unusable(Exception):
    """This address cannot be read as one plain mailbox."""


def parse_addresses(name: str, raw: str, *, strict: bool) -> tuple[tuple[Address, ...], str | None]:
    """The mailboxes of one address field, and a problem (or None).

    ``strict`` (for From): the field yields nothing at all when it is too long or when any
    part of it is unusable. Otherwise unusable addresses are skipped and the rest kept.
    """
    label = name.capitalize()
    tried = readings(unfold(raw))
    if strict and len(tried[0].value) > MAX_ADDRESS_FIELD:
        return (), f"{label} header too long ({len(tried[0].value)} characters)"
    found: list[Address] = []
    unusable = True
    for value, lenient in tried:  # at most four, each read in linear time
        if len(value) > MAX_ADDRESS_FIELD:
            value = value[: value.rfind(",", 0, MAX_ADDRESS_FIELD) + 1]
        read, read_unusable = _address_list(tokens(value, lenient=lenient))
        if not read_unusable:
            found, unusable = read, False
            break
        if len(read) > len(found):
            found = read
    if strict and unusable:
        return (), f"{label} header unparseable"
    return tuple(found), None


def all_addresses(
    name: str, values: Iterable[str], *, strict: bool
) -> tuple[tuple[Address, ...], list[str]]:
    """The mailboxes of every field of one name, and the problems met on the way."""
    found: list[Address] = []
    problems: list[str] = []
    for raw in values:
        addresses, problem = parse_addresses(name, raw, strict=strict)
        found.extend(addresses)
        if problem:
            problems.append(problem)
    return tuple(found), problems


# ---------------------------------------------------------------------------------------------
# Grammar


class _Cursor:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def at(self, special: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "special" and token.text == special

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, special: str) -> None:
        if not self.at(special):
            raise _Unusable(special)
        self.pos += 1


def _address_list(tokens: list[Token]) -> tuple[list[Address], bool]:
    """Every usable mailbox, and whether anything was unusable."""
    cursor = _Cursor(tokens)
    found: list[Address] = []
    unusable = False
    while cursor.peek() is not None:
        if cursor.at(","):
            cursor.take()
            continue
        start = cursor.pos
        try:
            mailboxes = _address(cursor)
            if cursor.peek() is not None and not cursor.at(","):
                raise _Unusable("text after an address")
            found.extend(mailboxes)
        except _Unusable:
            unusable = True
            _skip_to_next_address(cursor, start)
    return found, unusable


def _skip_to_next_address(cursor: _Cursor, start: int) -> None:
    """Resynchronise after an unusable address: just past the next top-level comma."""
    cursor.pos = start
    depth = 0
    while cursor.peek() is not None:
        token = cursor.take()
        if token.kind != "special":
            continue
        if token.text == "<":
            depth += 1
        elif token.text == ">":
            depth = max(0, depth - 1)
        elif token.text == "," and depth == 0:
            return


def _address(cursor: _Cursor) -> list[Address]:
    phrase = _phrase(cursor)
    if cursor.at(":"):
        cursor.take()
        return _group(cursor)
    return [_mailbox(cursor, phrase)]


def _group(cursor: _Cursor) -> list[Address]:
    members: list[Address] = []
    while not cursor.at(";"):
        if cursor.peek() is None:
            return members  # an unterminated group is common enough, and harmless
        if cursor.at(","):
            cursor.take()
            continue
        members.append(_mailbox(cursor, _phrase(cursor)))
        if not (cursor.at(",") or cursor.at(";") or cursor.peek() is None):
            raise _Unusable("text after an address")
    cursor.take()
    return members


def _mailbox(cursor: _Cursor, phrase: list[Token]) -> Address:
    if cursor.at("<"):
        cursor.take()
        local = _phrase(cursor)
        addr = _addr_spec(cursor, local)
        cursor.expect(">")
        return Address(name=_display_name(phrase), addr=addr)
    if cursor.at("@"):
        return Address(name="", addr=_addr_spec(cursor, phrase))
    raise _Unusable("no address")


def _phrase(cursor: _Cursor) -> list[Token]:
    """Words (atoms, quoted strings) and obsolete dots, up to the next special."""
    words: list[Token] = []
    while True:
        token = cursor.peek()
        if token is None:
            return words
        if token.kind == "bad" or token.kind == "literal":
            raise _Unusable(token.text)
        if token.kind == "special" and token.text != ".":
            return words
        words.append(cursor.take())


def _addr_spec(cursor: _Cursor, local: list[Token]) -> str:
    cursor.expect("@")
    if any(token.kind != "atom" and token.text != "." for token in local):
        raise _Unusable("quoted local part")
    domain = _phrase(cursor)
    if any(token.kind != "atom" and token.text != "." for token in domain):
        raise _Unusable("quoted domain")
    username = fix_8bit("".join(token.text for token in local))
    host = fix_8bit("".join(token.text for token in domain))
    if not (_LOCAL_PART.fullmatch(username) and _DOMAIN.fullmatch(host)):
        raise _Unusable("not local@domain")
    addr = f"{username}@{host}"
    if username.startswith(".") or username.endswith(".") or not addr.isprintable():
        raise _Unusable("not local@domain")
    if len(addr) > MAX_ADDRESS:
        raise _Unusable("address too long")
    return addr.lower()


def _display_name(phrase: list[Token]) -> str:
    text = fix_8bit("".join((" " if token.spaced else "") + token.text for token in phrase))
    if "\x1b$" in text and text.isascii():
        with contextlib.suppress(UnicodeError):
            text = text.encode("ascii").decode("iso2022_jp")
    # Decoded only now, as display text: nothing in it is ever read as an address.
    return clean(decode_words(text), 200)


# Providers that ignore dots in the local part (and their other domain names).
_DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def sender_key(addr: str) -> str:
    """One address per mailbox for counting: lower-cased, without a ``+tag``, and at providers
    that ignore them (Gmail), without dots in the local part and under one domain name.

    ``Rita.R+x@GoogleMail.com`` -> ``ritar@gmail.com``. Only for limits, never for sending."""
    local, at, domain = addr.strip().lower().rpartition("@")
    if not at:
        return addr.strip().lower()
    local = local.partition("+")[0] or local
    if domain in _DOTLESS_DOMAINS:
        domain = _DOTLESS_DOMAINS[domain]
        local = local.replace(".", "") or local
    return f"{local}@{domain}"
