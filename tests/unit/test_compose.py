"""Composing outgoing mail: no reporter input can add a header or a body line."""

from __future__ import annotations

import email
import email.policy
import sys
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.mail.compose import (
    DROPPED,
    MAX_REFERENCES,
    clean_address,
    clean_header,
    compose,
    make_message_id,
    verify_message_id,
)
from mailbot.mail.headers import header_text
from mailbot.mail.message import LOOP_HEADER

KEY = b"test-token-key-0123456789"
OUR_ID = "<SEC-2026-0001.receipt.n1.0123456789abcdef@example.test>"
EXPECTED_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    LOOP_HEADER,
    "X-Auto-Response-Suppress",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
]

INJECTIONS = [
    "hi\r\nBcc: victim@evil.test",
    "hi\nBcc: victim@evil.test",
    "hi\rBcc: victim@evil.test",
    "hi\r\n\r\nInjected body line",
    "hi\x00Bcc: victim@evil.test",
    "hi\u2028Bcc: victim@evil.test",
    "hi\u2029Bcc: victim@evil.test",
    "hi\u0085Bcc: victim@evil.test",
    "hi\x0bBcc: victim@evil.test\x0cX-Injected: 1",
    "=?utf-8?q?hi=0D=0ABcc:_victim@evil.test?=",
    "=?utf-8?b?aGkNCkJjYzogdmljdGltQGV2aWwudGVzdA==?=",
    "hi\r\n Bcc: folded-continuation@evil.test",
]


def build(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "from_address": "Example Security <security@example.test>",
        "to": ["Jane Reporter <jane@example.org>"],
        "subject": "Re: XSS in login [SEC-2026-0001]",
        "text": "Thank you for your report.\n",
        "html": None,
        "message_id": OUR_ID,
        "in_reply_to": "<report-1@example.org>",
        "references": ["<report-1@example.org>"],
        "auto_submitted": "auto-replied",
        "date": datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
    }
    args.update(overrides)
    return compose(**args)  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def header_names(data: bytes) -> list[str]:
    return list(parse(data).keys())


def text_body(data: bytes) -> str:
    part = parse(data).get_body(("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


# ---------------------------------------------------------------------------------------------
# The message as a whole


def test_a_receipt_carries_the_loop_marks_and_threading() -> None:
    msg = parse(build())

    assert list(msg.keys()) == EXPECTED_HEADERS
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg[LOOP_HEADER] == "security@example.test"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Precedence"] is None  # RFC 3834 5.1: not for automatic responses
    assert msg["Message-ID"] == OUR_ID
    assert msg["In-Reply-To"] == "<report-1@example.org>"
    assert msg["References"] == "<report-1@example.org>"
    assert msg["Date"] == "Mon, 05 Jan 2026 09:30:00 +0000"


def test_the_bytes_are_crlf_and_seven_bit() -> None:
    data = build(subject="Ünïcödé", text="Grüße, Zoë — привет\n", to=["Zoë <zoe@example.org>"])

    assert all(b < 0x80 for b in data)
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert parse(data)["Subject"] == "Ünïcödé"
    assert text_body(data) == "Grüße, Zoë — привет\n"


def test_html_makes_a_multipart_alternative() -> None:
    msg = parse(build(html="<p>Thank you</p>"))

    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_without_html_the_message_is_plain_text() -> None:
    assert parse(build()).get_content_type() == "text/plain"


def test_the_parent_ends_the_references_and_they_are_capped() -> None:
    older = [f"<old-{n}@example.org>" for n in range(40)]

    msg = parse(build(references=older, in_reply_to="<parent@example.org>"))

    refs = msg["References"].split()
    assert len(refs) == MAX_REFERENCES
    assert refs[0] == "<old-0@example.org>"  # the thread's root survives the cap
    assert refs[-1] == "<parent@example.org>"
    assert refs[-2] == "<old-39@example.org>"


def test_malformed_references_are_dropped() -> None:
    junk = ["no-brackets@example.org", "<two words@example.org>", "<no-at-sign>", "", "<a@b>"]

    msg = parse(build(references=junk, in_reply_to="not an id"))

    assert msg["In-Reply-To"] is None
    assert msg["References"] == "<a@b>"


def test_long_message_ids_stay_readable_for_threading() -> None:
    outlook = (
        "<AM0PR07MB1234567890ABCDEF1234567890ABCDEF12@AM0PR07MB1234.eurprd07.prod.outlook.com>"
    )

    data = build(in_reply_to=outlook, references=[outlook, "<a@b>"])

    assert b"=?" not in data  # an RFC 2047 encoded id no longer matches anything
    msg = parse(data)
    assert msg["In-Reply-To"] == outlook
    assert msg["References"].split() == ["<a@b>", outlook]


def test_a_non_ascii_domain_is_sent_in_its_ascii_form() -> None:
    msg = parse(build(to=["Jürgen <j@bücher.example>"]))

    assert msg["To"].addresses[0].addr_spec == "j@xn--bcher-kva.example"


def test_extra_headers_are_cleaned_and_cannot_replace_ours() -> None:
    msg = parse(build(extra_headers={"X-Mailbot-Case": "SEC-2026-0001\r\nBcc: x@evil.test"}))
    assert msg["X-Mailbot-Case"] == "SEC-2026-0001 Bcc: x@evil.test"

    for name in ("Bcc", "To", "From", "Auto-Submitted", "Bad Name", "X-A:b"):
        with pytest.raises(ValueError):
            build(extra_headers={name: "x"})


@pytest.mark.parametrize(
    "bad",
    [
        {"message_id": "no-brackets@example.test"},
        {"date": datetime(2026, 1, 5, 9, 30)},  # naive
        {"auto_submitted": "auto-replied\r\nBcc: x@evil.test"},
        {"to": []},
        {"to": ["not an address"]},
        {"from_address": "nobody"},
    ],
)
def test_what_the_caller_controls_is_checked(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build(**bad)


# ---------------------------------------------------------------------------------------------
# Injection


@pytest.mark.parametrize("attack", INJECTIONS)
def test_subject_injection_never_adds_a_header(attack: str) -> None:
    data = build(subject=attack)

    assert header_names(data) == EXPECTED_HEADERS
    assert "\n" not in parse(data)["Subject"]
    assert parse(data)["Bcc"] is None


@pytest.mark.parametrize("attack", INJECTIONS)
def test_display_name_injection_never_adds_a_header(attack: str) -> None:
    data = build(to=[f'"{attack}" <jane@example.org>'])

    assert header_names(data) == EXPECTED_HEADERS
    addresses = parse(data)["To"].addresses
    assert [a.addr_spec for a in addresses] == ["jane@example.org"]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_references_injection_never_adds_a_header(attack: str) -> None:
    data = build(in_reply_to=f"<x@y>{attack}", references=[attack, f"<a@b>{attack}"])

    assert header_names(data) == [
        h for h in EXPECTED_HEADERS if h not in ("In-Reply-To", "References")
    ]


def test_an_address_with_a_second_address_smuggled_in_is_refused() -> None:
    for value in [
        "Bob <bob@example.org>\nBcc: victim@evil.test",
        "bob@example.org, victim@evil.test",
        "bob@example.org)<victim@evil.test>",
        "Bcc: victim@evil.test( <bob@example.org>",  # found by hypothesis
    ]:
        with pytest.raises(ValueError):
            clean_address(value)


def test_a_long_display_name_cannot_turn_into_a_group_when_folded() -> None:
    # Found by the long fuzz: the stock folder dropped the quotes of a long quoted name, and
    # readers then saw a group "...Bcc:" holding x@evil.test as the recipient.
    name = "=?utf-8?q?\r\nDQpCY2M6IHhAZXZpbC50ZXN0DQpCY2M6IHhAZXZpbC50ZXN0Bcc: x@evil.test"

    msg = parse(build(to=[f'"{name}" <jane@example.org>']))

    assert [a.addr_spec for a in msg["To"].addresses] == ["jane@example.org"]
    assert msg["To"].groups[0].display_name is None


def test_a_display_name_with_a_comma_is_quoted_not_split() -> None:
    address = clean_address('"Evil, Bcc: x@y" <a@example.org>')

    assert address.addr_spec == "a@example.org"
    assert address.display_name == "Evil, Bcc: x@y"


@pytest.mark.parametrize(
    "value",
    ["", "nobody", "<>", "@example.org", "bob@", "bob@-bad-.org", "zoë@example.org",
     '"quoted local"@example.org', "bob@exa mple.org"],
)  # fmt: skip
def test_unusable_addresses_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        clean_address(value)


# ---------------------------------------------------------------------------------------------
# clean_header


@pytest.mark.parametrize("attack", INJECTIONS)
def test_clean_header_leaves_no_line_break_or_control(attack: str) -> None:
    cleaned = clean_header(attack)

    assert cleaned == cleaned.strip()
    assert not any(ch in cleaned for ch in "\r\n\x00\x0b\x0c\u0085\u2028\u2029")
    assert "  " not in cleaned


def test_clean_header_shortens_with_an_ellipsis() -> None:
    assert clean_header("a" * 300, limit=10) == "a" * 9 + "…"
    assert clean_header("short", limit=10) == "short"
    assert clean_header("  spaced \t out  ") == "spaced out"


def test_clean_header_drops_bidi_overrides() -> None:
    assert clean_header("invoice\u202egnp.exe") == "invoice gnp.exe"


@pytest.mark.parametrize("subject", [
    "=?x-unknown?q?caf=E9?=",                    # an unknown charset: Latin-1 when not UTF-8
    "=?utf-8?q?caf=C3?= =?utf-8?q?=A9?=",        # one character split over two words
    "=?utf-8?q?hi=0D=0ABcc:_x?=",                # a line break hidden in an encoded word
    "=?gb2312?b?xOO6ww==?= report",
])
def test_an_echoed_subject_reads_as_the_case_shows_it(subject: str) -> None:
    # One RFC 2047 decoder: what a receipt echoes is what intake read.
    assert clean_header(subject) == header_text(subject)


def test_nothing_left_after_cleaning_is_an_encoded_word_for_the_email_package() -> None:
    # A word the decoder will not read (a space inside) must not be decoded later by the email
    # package on its way out.
    cleaned = clean_header("=?utf-8?q?a b=0ABcc:_x?=")
    message = EmailMessage(policy=email.policy.SMTP)
    message["Subject"] = cleaned
    assert str(message["Subject"]) == cleaned


# ---------------------------------------------------------------------------------------------
# Message-ID tokens


def test_a_message_id_is_stable_and_verifies() -> None:
    first = make_message_id("SEC-2026-0042", "receipt", KEY, "example.test", "q1")
    again = make_message_id("SEC-2026-0042", "receipt", KEY, "example.test", "q1")

    assert first == again
    assert first.startswith("<SEC-2026-0042.receipt.q1.")
    assert first.endswith("@example.test>")
    assert verify_message_id(first, KEY) == "SEC-2026-0042"


def test_different_nonces_give_different_ids_for_the_same_case() -> None:
    a = make_message_id("SEC-2026-0042", "reminder", KEY, "example.test", "n1")
    b = make_message_id("SEC-2026-0042", "reminder", KEY, "example.test", "n2")

    assert a != b
    assert verify_message_id(a, KEY) == verify_message_id(b, KEY) == "SEC-2026-0042"


def test_a_tampered_token_does_not_verify() -> None:
    good = make_message_id("SEC-2026-0042", "receipt", KEY, "example.test", "q1")
    other_case = good.replace("SEC-2026-0042", "SEC-2026-0043")
    local, _, domain = good[1:-1].rpartition("@")
    flipped = local[:-1] + ("0" if local[-1] != "0" else "1")

    assert verify_message_id(other_case, KEY) is None
    assert verify_message_id(f"<{flipped}@{domain}>", KEY) is None


def test_another_key_does_not_verify() -> None:
    good = make_message_id("SEC-2026-0042", "receipt", KEY, "example.test", "q1")

    assert verify_message_id(good, b"another key") is None
    assert verify_message_id(good, b"") is None


@pytest.mark.parametrize(
    "junk",
    ["", "<>", "<@>", "junk", "<a.b.c.d@x>", "<SEC-2026-0042.receipt.q1@example.test>",
     "<SEC-2026-0042.receipt.q1.zzzz@example.test>", "<" + "a." * 500 + "@x>",
     "<SEC-2026-0042.receipt.q1.0123456789abcdef.extra@x>", "\x00\r\n<<>>@@"],
)  # fmt: skip
def test_junk_ids_give_none(junk: str) -> None:
    assert verify_message_id(junk, KEY) is None


def test_verify_ignores_surrounding_space_and_token_case() -> None:
    good = make_message_id("SEC-2026-0042", "receipt", KEY, "example.test", "q1")

    local, _, domain = good[1:-1].rpartition("@")
    head, _, token = local.rpartition(".")
    assert verify_message_id(f" <{head}.{token.upper()}@{domain}> ", KEY) == "SEC-2026-0042"


@pytest.mark.parametrize(
    ("case_id", "kind", "nonce", "domain"),
    [("SEC.1", "receipt", "n", "example.test"), ("SEC-1", "re.ceipt", "n", "example.test"),
     ("SEC-1", "receipt", "a@b", "example.test"), ("SEC-1", "receipt", "n", "bad domain"),
     ("", "receipt", "n", "example.test")],
)  # fmt: skip
def test_make_message_id_refuses_parts_that_would_not_parse_back(
    case_id: str, kind: str, nonce: str, domain: str
) -> None:
    with pytest.raises(ValueError):
        make_message_id(case_id, kind, KEY, domain, nonce)


# ---------------------------------------------------------------------------------------------
# Anything at all


# Pieces that are harmless alone and dangerous together: hypothesis strings them into encoded
# words, folded lines and address lists.
FRAGMENTS = [
    "\r\n", "\n", "\r", " ", "\t", "\x00", "\u2028", "\u0085", "=?utf-8?q?", "=?utf-8?b?",
    "=?iso-8859-1?q?", "?=", "=0D=0A", "=0A", "DQpCY2M6IHhAZXZpbC50ZXN0", "Bcc: x@evil.test",
    "X-Injected: 1", '"', "\\", "<", ">", ",", ";", ":", "@", "(", ")", "_", "<a@b>",
]  # fmt: skip
nasty_text = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(FRAGMENTS)), max_size=25).map(
    "".join
)


any_text = {
    "subject": nasty_text | st.text(max_size=400),
    "name": nasty_text,
    "body": st.text(max_size=600),
    "html": st.none() | st.text(max_size=500),
    "refs": st.lists(nasty_text, max_size=6) | st.lists(st.text(max_size=40), max_size=30),
    "parent": st.none() | nasty_text,
    "offset": st.integers(min_value=-12 * 60, max_value=14 * 60),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**any_text)
def test_compose_never_raises_nor_adds_headers_for_any_text(
    subject: str,
    name: str,
    body: str,
    html: str | None,
    refs: list[str],
    parent: str | None,
    offset: int,
) -> None:
    check_compose_is_safe(subject, name, body, html, refs, parent, offset)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**any_text)
def test_compose_is_safe_in_a_long_fuzz(
    subject: str,
    name: str,
    body: str,
    html: str | None,
    refs: list[str],
    parent: str | None,
    offset: int,
) -> None:
    check_compose_is_safe(subject, name, body, html, refs, parent, offset)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=nasty_text)
def test_an_unquoted_display_name_is_refused_or_safe(name: str) -> None:
    try:
        data = build(to=[f"{name} <jane@example.org>"])
    except ValueError:
        return  # ambiguous input is refused, which the caller records
    msg = parse(data)
    assert list(msg.keys()) == EXPECTED_HEADERS
    assert [a.addr_spec for a in msg["To"].addresses] == ["jane@example.org"]


def check_compose_is_safe(
    subject: str,
    name: str,
    body: str,
    html: str | None,
    refs: list[str],
    parent: str | None,
    offset: int,
) -> None:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    data = build(
        subject=subject,
        to=[f'"{quoted}" <jane@example.org>'],
        text=body,
        html=html,
        references=refs,
        in_reply_to=parent,
        date=datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(minutes=offset))),
    )

    msg = parse(data)
    names = list(msg.keys())
    assert set(names) <= set(EXPECTED_HEADERS)
    assert len(names) == len(set(names))
    assert [a.addr_spec for a in msg["To"].addresses] == ["jane@example.org"]
    assert "\n" not in str(msg["Subject"])
    assert all(b < 0x80 for b in data)


@settings(max_examples=300, deadline=None)
@given(value=nasty_text | st.text(), limit=st.integers(min_value=1, max_value=300))
def test_clean_header_is_one_stable_line_that_the_email_package_keeps_as_is(
    value: str, limit: int
) -> None:
    cleaned = clean_header(value, limit)

    assert len(cleaned) <= limit
    assert not any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in cleaned)
    assert cleaned == " ".join(cleaned.split())
    assert clean_header(cleaned, limit) == cleaned
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = cleaned  # must not raise, and must not be decoded into something else
    assert str(msg["Subject"]) == cleaned
    assert list(parse(msg.as_bytes()).keys()) == ["Subject"]


@settings(max_examples=300, deadline=None)
@given(message_id=nasty_text | st.text(), key=st.binary(max_size=40))
def test_verify_message_id_never_raises(message_id: str, key: bytes) -> None:
    assert verify_message_id(message_id, key) in (None, *[p for p in message_id.split(".")])


def test_dropped_characters_are_exactly_controls_surrogates_separators_and_bidi() -> None:
    """The one character class header cleaning uses holds every character of the categories it
    names and nothing else, over all of Unicode."""
    bidi = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    for point in range(sys.maxunicode + 1):
        ch = chr(point)
        expected = ch in bidi or unicodedata.category(ch) in {"Cc", "Cs", "Zl", "Zp"}
        assert bool(DROPPED.match(ch)) is expected, hex(point)
