"""The sender's own text (mailbot.mail.owntext.own_text), one case of its docstring per test."""

from __future__ import annotations

import pytest

from mailbot.mail.owntext import above_quotes
from mailbot.mail.parse import parse_message
from tests import forwards

HEAD = (
    "From: Alice <alice@team.example.test>\r\nTo: security@example.test\r\nSubject: x\r\n"
    "Message-ID: <o@team.example.test>\r\nMIME-Version: 1.0\r\n"
)


def own(body: str) -> str:
    return parse_message((HEAD + body).encode()).own_text


@pytest.mark.parametrize("shape", sorted(forwards.SHAPES))
def test_nothing_passed_on_is_the_senders_own_text(shape: str) -> None:
    text = own(forwards.SHAPES[shape]())
    assert "/close" not in text and "Mallory" not in text


def test_a_plain_message_is_all_own_text() -> None:
    assert own("Content-Type: text/plain\r\n\r\n/ack\r\nThanks.\r\n") == "/ack\nThanks.\n"


def test_the_note_above_an_attached_report_is_own_text() -> None:
    assert own(forwards.attached_with_plain_note()).strip() == "FYI, see the attached report."


def test_an_html_note_is_converted_and_wins_over_the_plain_text_of_the_enclosed_report() -> None:
    assert own(forwards.attached_with_html_note()).strip() == "FYI, see the attached report."


def test_a_text_part_marked_as_attachment_is_not_own_text() -> None:
    body = forwards._mixed(
        'Content-Type: text/plain\r\nContent-Disposition: attachment; filename="r.txt"\r\n\r\n'
        "/close invalid\r\n"
    )
    assert own(body) == ""


def test_an_inline_text_part_with_a_filename_is_body_text_but_not_own_text() -> None:
    body = forwards._mixed(
        'Content-Type: text/plain\r\nContent-Disposition: inline; filename="r.txt"\r\n\r\n'
        "/close invalid\r\n"
    )
    msg = parse_message((HEAD + body).encode())
    assert "/close invalid" in msg.text_body
    assert msg.own_text == ""


def test_the_signature_of_a_signed_message_is_not_own_text() -> None:
    body = (
        'Content-Type: multipart/signed; protocol="text/plain"; boundary="s"\r\n\r\n'
        "--s\r\nContent-Type: image/png\r\n\r\nPNG\r\n"
        "--s\r\nContent-Type: text/plain\r\n\r\n/close invalid\r\n--s--\r\n"
    )
    assert own(body) == ""


def test_rfc822_headers_are_not_own_text() -> None:
    body = forwards._mixed("Content-Type: text/rfc822-headers\r\n\r\n/close invalid\r\n")
    assert own(body) == ""


def test_only_the_first_text_part_counts() -> None:
    body = forwards._mixed(
        "Content-Type: text/plain\r\n\r\nHello.\r\n", "Content-Type: text/plain\r\n\r\n/ack\r\n"
    )
    assert own(body).strip() == "Hello."


def test_the_plain_alternative_is_read_when_it_comes_first() -> None:
    body = (
        'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n--alt\r\n'
        "Content-Type: text/plain\r\n\r\n/ack\r\n--alt\r\nContent-Type: text/html\r\n\r\n"
        "<p>/close spam</p>\r\n--alt--\r\n"
    )
    assert own(body).strip() == "/ack"


def test_html_blockquote_lines_become_quote_lines_and_end_the_own_text() -> None:
    body = "Content-Type: text/html\r\n\r\n<p>/ack</p><blockquote>/close spam</blockquote>\r\n"
    assert own(body).strip() == "/ack"


@pytest.mark.parametrize(
    "marker",
    [
        "> /close spam",
        "On Mon, 30 Nov 2026 at 10:00, Rita <rita@x> wrote:",
        "-----Original Message-----",
        "---------- Forwarded message ---------",
        "-------- Forwarded Message --------",
        "Begin forwarded message:",
        "________________________________",
        "Am 30.11.2026 um 10:00 schrieb Rita:",
    ],
)
def test_own_text_ends_at_each_quote_marker(marker: str) -> None:
    assert above_quotes(f"/ack\nThanks.\n{marker}\n/close spam\n") == "/ack\nThanks."


def test_an_attribution_folded_over_two_lines_ends_the_own_text() -> None:
    text = "/ack\nOn Mon, 30 Nov 2026 at 10:00, Rita Reporter\n<rita@x> wrote:\n/close spam\n"
    assert above_quotes(text) == "/ack"


def test_an_outlook_header_block_ends_the_own_text_but_a_lone_from_line_does_not() -> None:
    assert above_quotes("/ack\nFrom: Rita\nSent: Monday\n/close spam") == "/ack"
    assert above_quotes("/ack\nFrom: here on, we fix it.\n") == "/ack\nFrom: here on, we fix it.\n"
