"""Properties of parsing that must hold for any input whatsoever."""

from __future__ import annotations

import re
from email import policy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.intake.rules import is_automatic
from mailbot.mail.addresses import parse_addresses
from mailbot.mail.authres import parse_authentication_results
from mailbot.mail.message import InboundMessage
from mailbot.mail.parse import dedupe_key, header_block_sender, parse_message

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that steer random bytes into the parsers' interesting corners.
FRAGMENTS = [
    b"From: a@b.example\n",
    b"From: =?utf-8?q?x=40y?= <c@d.example>\n",
    b"Subject: =?utf-8?b?w6k=?=\n",
    b"Content-Type: multipart/mixed; boundary=X\n",
    b"Content-Type: message/rfc822\n",
    b"Content-Type: text/html; charset=bogus\n",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Disposition: attachment; filename*=utf-8''a%2Fb\n",
    b"--X\n",
    b"--X--\n",
    b"\n",
    b"\r\n",
    b"\r",
    b" folded\n",
    b"=?",
    b"<p>&amp;</p>",
    b"\x00\xff\xfe",
]
mail_like = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=40)), max_size=40
).map(b"".join)
anything = st.one_of(st.binary(max_size=4000), mail_like)

field_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20).map(
    lambda name: "X-" + name
)
field_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60
).map(str.strip)


@FAST
@given(anything)
def test_parse_message_never_raises(raw: bytes) -> None:
    msg = parse_message(raw)
    assert isinstance(msg, InboundMessage)
    assert msg.raw_size == len(raw)
    assert msg.sender is None or msg.sender.addr.count("@") == 1


@FAST
@given(anything, st.integers(min_value=0, max_value=200))
def test_parse_message_never_raises_on_oversize_mail(raw: bytes, max_bytes: int) -> None:
    msg = parse_message(raw, max_bytes=max_bytes)
    assert ("oversize" in msg.defects) == (len(raw) > max_bytes)
    if len(raw) > max_bytes:
        assert msg.text_body == "" and msg.attachments == ()
        assert msg.sender == header_block_sender(raw)


@FAST
@given(anything)
def test_dedupe_key_is_stable(raw: bytes) -> None:
    key = dedupe_key(raw)
    assert len(key) == 64
    assert key == dedupe_key(bytes(raw))


@FAST
@given(st.lists(st.tuples(field_name, field_value), max_size=8), st.binary(max_size=300))
def test_dedupe_key_ignores_trace_fields_added_on_top(
    fields: list[tuple[str, str]], body: bytes
) -> None:
    head = b"".join(f"{name}: {value}\n".encode() for name, value in fields)
    raw = b"From: a@b.example\n" + head + b"\n" + body
    trace = b"Received: from x by y; Mon, 2 Nov 2026 10:00:00 +0000\nDelivered-To: s@e.example\n"
    assert dedupe_key(trace + raw) == dedupe_key(raw)


@FAST
@given(
    st.lists(st.tuples(field_name, field_value), max_size=10),
    st.lists(st.tuples(field_name, field_value), max_size=10),
    st.binary(max_size=500),
)
def test_auto_submitted_auto_replied_is_always_automatic(
    before: list[tuple[str, str]], after: list[tuple[str, str]], body: bytes
) -> None:
    def block(fields: list[tuple[str, str]]) -> bytes:
        return b"".join(f"{name}: {value}\r\n".encode() for name, value in fields)

    raw = block(before) + b"Auto-Submitted: auto-replied\r\n" + block(after) + b"\r\n" + body
    assert is_automatic(parse_message(raw)).yes


HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
address_text = st.lists(
    st.one_of(
        st.sampled_from([*'()<>@,;:\\".[] ', "=?utf-8?q?", "?=", "alice", "example.com"]),
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=6),
    ),
    max_size=30,
).map("".join)


@FAST
@given(address_text)
def test_addresses_agree_with_the_stdlib_wherever_it_sees_no_defect(value: str) -> None:
    ours = [a.addr for a in parse_addresses("to", value, strict=False)[0]]
    try:
        header = policy.default.header_factory("to", value)
    except Exception:  # the stdlib's parser raises on some inputs (IndexError seen)
        return
    # We refuse quoted local parts, domain literals and domains that are not host names.
    if header.defects or any(
        not a.username or '"' in a.addr_spec or not HOST_NAME.fullmatch(a.domain)
        for a in header.addresses
    ):
        return
    theirs = [a.addr_spec.lower() for a in header.addresses]
    assert ours == theirs


@FAST
@given(st.one_of(st.text(max_size=300), address_text))
def test_authentication_results_parsing_never_raises_or_hangs(value: str) -> None:
    parsed = parse_authentication_results(value)
    assert parsed is None or parsed.authserv_id
