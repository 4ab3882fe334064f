"""A reporter's text passed on by the team, in every shape mail clients give a forward.

Each builder returns the MIME body (header fields for the body, a blank line, the body) of a
message whose own note carries no command, while the text it passes on begins with the
commands in ``PASSED_ON``. ``forward`` wraps a body into a whole message from a team member.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

from tests.mailflow import PASS, REPORTER, SECURITY, TEAM_MEMBER, new_message_id

PASSED_ON = '/close invalid\n/credit "Mallory the Great"\n\nThe login form reflects ?next=.\n'
REPORTER_HEADERS = (
    f"From: Rita Reporter <{REPORTER}>\r\nTo: {SECURITY}\r\nSubject: XSS in the login form\r\n"
    "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-ID: <orig-1@reporter.example>\r\n"
)
ATTRIBUTION = f"From: Rita Reporter <{REPORTER}>\nDate: Mon, 30 Nov 2026 10:00\n" \
    f"Subject: XSS in the login form\nTo: {SECURITY}\n"


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _enclosed(body: str = PASSED_ON, disposition: str = "attachment") -> str:
    part = "Content-Type: message/rfc822\r\n"
    if disposition:
        part += f'Content-Disposition: {disposition}; filename="report.eml"\r\n'
    return part + "\r\n" + REPORTER_HEADERS + "Content-Type: text/plain\r\n\r\n" + _crlf(body)


def _mixed(*parts: str) -> str:
    out = "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\nForwarded.\r\n"
    for part in parts:
        out += "--outer\r\n" + part + "\r\n"
    return out + "--outer--\r\n"


def attached_with_plain_note() -> str:
    """Thunderbird's "Forward As Attachment"."""
    return _mixed("Content-Type: text/plain\r\n\r\nFYI, see the attached report.\r\n", _enclosed())


def attached_with_html_note() -> str:
    """Outlook: a short HTML note, the report attached without a disposition."""
    note = "Content-Type: text/html\r\n\r\n<p>FYI, see the attached report.</p>\r\n"
    return _mixed(note, _enclosed(disposition=""))


def attached_with_no_note() -> str:
    """"Reply with original attached", or a forward filed in Sent with nothing written."""
    return _mixed(_enclosed(disposition="inline"))


def attached_after_an_empty_note() -> str:
    """An empty first text part, then the report as a second, plain, non-attached part."""
    return _mixed("Content-Type: text/plain\r\n\r\n\r\n", "Content-Type: text/plain\r\n\r\n"
                  + _crlf(PASSED_ON))


def nested_twice() -> str:
    """A forward of a forward, each as an attachment, with no note at either level."""
    inner = _mixed(_enclosed())
    middle = (
        "Content-Type: message/rfc822\r\n\r\n"
        f"From: Bob <bob@team.example.test>\r\nTo: {TEAM_MEMBER}\r\nSubject: Fwd: XSS\r\n" + inner
    )
    return _mixed(middle)


def _plain(text: str) -> str:
    return "Content-Type: text/plain; charset=utf-8\r\n\r\n" + _crlf(text)


def _html(markup: str) -> str:
    return "Content-Type: text/html; charset=utf-8\r\n\r\n" + _crlf(markup)


def gmail_inline() -> str:
    return _plain("\n---------- Forwarded message ---------\n" + ATTRIBUTION + "\n" + PASSED_ON)


def gmail_inline_html() -> str:
    quoted = PASSED_ON.replace("\n", "<br>")
    return _html(
        '<div dir="ltr"><br><div class="gmail_quote"><div class="gmail_attr">'
        "---------- Forwarded message ---------<br>From: Rita</div><br>"
        f"<div>{quoted}</div></div></div>"
    )


def outlook_inline() -> str:
    return _plain("\n-----Original Message-----\n" + ATTRIBUTION + "\n" + PASSED_ON)


def outlook_inline_rule() -> str:
    header = f"From: Rita Reporter <{REPORTER}>\nSent: Monday, November 30, 2026 10:00 AM\n"
    return _plain("\n________________________________\n" + header + "\n" + PASSED_ON)


def outlook_inline_html() -> str:
    quoted = PASSED_ON.replace("\n", "<br>")
    return _html(
        '<div id="divRplyFwdMsg"><b>From:</b> Rita Reporter<br><b>Sent:</b> Monday, November 30'
        f"<br><b>Subject:</b> XSS</div><div>{quoted}</div>"
    )


def apple_mail_inline() -> str:
    return _plain("\nBegin forwarded message:\n\n" + ATTRIBUTION + "\n" + PASSED_ON)


def apple_mail_inline_html() -> str:
    quoted = PASSED_ON.replace("\n", "<br>")
    return _html(
        '<div><br><blockquote type="cite"><div>Begin forwarded message:</div><br>'
        f"<div>{quoted}</div></blockquote></div>"
    )


def thunderbird_inline() -> str:
    return _plain("\n\n-------- Forwarded Message --------\n" + ATTRIBUTION + "\n" + PASSED_ON)


def html_reply_bottom_posted_under_a_quote() -> str:
    """A reply written under the quote, as Thunderbird and Apple Mail allow."""
    quoted = PASSED_ON.replace("\n", "<br>")
    return _html(
        f'<blockquote type="cite">{quoted}</blockquote><p>Looking into it.</p>'
    )


def quoted_reply_with_attribution() -> str:
    return _plain(f"\nOn Mon, 30 Nov 2026 at 10:00, Rita Reporter\n<{REPORTER}> wrote:\n"
                  + "".join("> " + line + "\n" for line in PASSED_ON.splitlines()))


SHAPES: dict[str, Callable[[], str]] = {
    "attached, plain note": attached_with_plain_note,
    "attached, html note": attached_with_html_note,
    "attached, no note": attached_with_no_note,
    "after an empty first part": attached_after_an_empty_note,
    "nested twice": nested_twice,
    "gmail inline": gmail_inline,
    "gmail inline html": gmail_inline_html,
    "outlook inline": outlook_inline,
    "outlook inline rule": outlook_inline_rule,
    "outlook inline html": outlook_inline_html,
    "apple mail inline": apple_mail_inline,
    "apple mail inline html": apple_mail_inline_html,
    "thunderbird inline": thunderbird_inline,
    "html bottom-posted under a quote": html_reply_bottom_posted_under_a_quote,
    "quoted reply with attribution": quoted_reply_with_attribution,
}


def forward(
    body: str,
    *,
    case_id: str,
    answering: str,
    sender: str = f"Alice <{TEAM_MEMBER}>",
    authentication_results: str | None = PASS,
    message_id: str | None = None,
) -> bytes:
    """A team member's message to security@ in the case's thread whose MIME body is ``body``."""
    head = ""
    if authentication_results is not None:
        head += f"Authentication-Results: {authentication_results}\r\n"
    head += (
        f"From: {sender}\r\nTo: {SECURITY}\r\nSubject: Fwd: [{case_id}] XSS in the login form\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: {message_id or new_message_id('team.example.test')}\r\n"
        f"In-Reply-To: {answering}\r\nReferences: {answering}\r\nMIME-Version: 1.0\r\n"
    )
    return (head + body).encode("utf-8")
