"""Our own address-field parser: strict where it matters, linear on anything."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import pytest

from mailbot.mail.address_tokens import tokens
from mailbot.mail.addresses import MAX_ADDRESS_FIELD, parse_addresses
from mailbot.mail.message import Address


def strict(value: str) -> tuple[Address, ...]:
    return parse_addresses("from", value, strict=True)[0]


def lax(value: str) -> list[str]:
    return [a.addr for a in parse_addresses("to", value, strict=False)[0]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice@example.com", Address("", "alice@example.com")),
        ("Alice <ALICE@Example.COM>", Address("Alice", "alice@example.com")),
        ('"Doe, Jane" <jane@example.com>', Address("Doe, Jane", "jane@example.com")),
        ("John Q. Public <jqp@example.com>", Address("John Q. Public", "jqp@example.com")),
        ("alice@example.com (Alice)", Address("", "alice@example.com")),
        ("(c) Alice (c) <alice @ example . com> (c)", Address("Alice", "alice@example.com")),
        ("=?utf-8?q?J=C3=B6rg?= <joerg@example.com>", Address("Jörg", "joerg@example.com")),
        ("=?utf-8?q?a?= =?utf-8?q?b?= <ab@example.com>", Address("ab", "ab@example.com")),
        (
            "=?utf-8?q?alice=40example.com?= <evil@x.test>",
            Address("alice@example.com", "evil@x.test"),
        ),
        ("Jöhn <jöhn@exämple.test>", Address("Jöhn", "jöhn@exämple.test")),
        ("a..b@docomo.ne.jp", Address("", "a..b@docomo.ne.jp")),
    ],
)
def test_a_plain_mailbox_is_read(value: str, expected: Address) -> None:
    assert strict(value) == (expected,)


@pytest.mark.parametrize(
    "value",
    [
        "alice@example.com@evil.test",
        '"alice@example.com"@evil.test',
        '"alice@example.com" bob@evil.test',
        "alice@example.com <bob@evil.test>",
        "Alice <alice@example.com> <bob@evil.test>",
        "alice@example.com)<bob@example.org>",
        "<alice@example.com",
        "Alice <alice@example.com",
        '"Alice <alice@example.com>',
        "(Alice <alice@example.com>",
        "alice@[127.0.0.1]",
        "<@route.example:alice@example.com>",
        "MAILER-DAEMON <>",
        "<MAILER-DAEMON>",
        "user2",
        "=?utf-8?b?YWxpY2VAZXhhbXBsZS5jb20=?=",
        "alice@example.com.",
        "alice@.example.com",
        ".alice@example.com",
        "alice\x01@example.com",
        "alice@exa\u202emple.com",
        "alice\\@example.com",
    ],
)
def test_anything_but_one_plain_mailbox_makes_a_strict_field_unusable(value: str) -> None:
    addresses, problem = parse_addresses("from", value, strict=True)
    assert addresses == ()
    assert problem == "From header unparseable"


def test_lax_fields_skip_unusable_addresses_and_keep_the_rest() -> None:
    value = "a@x.example, alice@example.com <bob@evil.test>, <@r:c@x.example>, b@x.example"
    assert lax(value) == ["a@x.example", "b@x.example"]


def test_groups_yield_their_members() -> None:
    assert lax("team: a@x.example, B@X.example;, c@x.example") == [
        "a@x.example",
        "b@x.example",
        "c@x.example",
    ]
    assert lax("undisclosed-recipients:;") == []


def test_an_overlong_strict_field_is_unusable_and_a_lax_one_is_cut() -> None:
    many = ", ".join(f"user{i}@example.test" for i in range(2000))
    assert len(many) > MAX_ADDRESS_FIELD
    assert parse_addresses("from", many, strict=True) == (
        (),
        f"From header too long ({len(many)} characters)",
    )
    kept = lax(many)
    assert 0 < len(kept) < 2000
    assert kept[-1].startswith("user")


def _lines_run(value: str) -> int:
    """How many lines of the parser's own code (grammar and tokens) run on ``value``: a count,
    not a stopwatch, so the answer is the same on a loaded machine."""
    count = 0
    modules = {parse_addresses.__code__.co_filename, tokens.__code__.co_filename}

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if frame.f_code.co_filename not in modules:
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        parse_addresses("from", value, strict=True)
        parse_addresses("to", value, strict=False)
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize(
    "unit",
    [
        *('"', "\\", "(", "<", "a,", '"a" ', "(a(b(c", "a@", ":"),
        # Raw 8-bit bytes (surrogate-escaped, as the stdlib hands them over) make the field be
        # read a second time, pairing each byte with the next; still linear.
        *("\udc83\\", '"\udc83\\', "(\udc83\\", "\udc83", "\udc83@", "\x00"),
        # Encoded words and ISO-2022-JP runs are read as one atom each.
        *("=?a?q?a,", "=?a?q?", "=?a?q?a?=", "\x1b$B<", "\x1b$B", '"\x1b$B', "(\x1b("),
    ],
)
def test_hostile_fields_are_read_in_linear_time(unit: str) -> None:
    # The stdlib's parser is quadratic on runs like these (about 3 s on 8 KB of '"'). Four times
    # the input must cost about four times the work, not sixteen.
    small = unit * (MAX_ADDRESS_FIELD // len(unit) // 16)
    large = unit * (MAX_ADDRESS_FIELD // len(unit) // 4)
    assert _lines_run(large) <= 6 * max(_lines_run(small), 1)
