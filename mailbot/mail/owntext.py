"""The text the sender of a message wrote in it, as opposed to what it encloses or quotes.

The team's authority (email commands) is read from this text only, so everything a reporter
wrote and a team member merely passes on stays inert, however it is passed on. Pure; never
raises on what the message holds.
"""

from __future__ import annotations

import re

from mailbot.mail.defects import Defects
from mailbot.mail.mime import BODY_JUNK, Walk

MAX_OWN_TEXT = 64 * 1024  # characters: commands sit at the top, a note is short

# Lines that begin what someone else wrote: the sender's own text ends at the first of them.
_QUOTE_MARKERS = re.compile(
    r"""^(?:
        >                                               # a quoted line
      | -{2,}\s*(?:original|forwarded)\s+message\s*-{2,}  # Outlook, Gmail, Thunderbird
      | begin\s+forwarded\s+message\s*:                 # Apple Mail
      | _{10,}                                          # Outlook's rule above a header block
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# "On Mon, 1 Dec 2026 at 10:00, Rita <rita@x> wrote:" (and a few languages), on one line or
# folded onto the next by the client.
_ATTRIBUTION = re.compile(
    r"^(?:on|am|le|el|il|op)\s.{0,400}(?:wrote|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef)"
    r"(?:\s.{0,200})?\s*:$",
    re.IGNORECASE,
)
# An Outlook header block: "From: ..." with "Sent:" or "Date:" within the next lines.
_HEADER_FROM = re.compile(r"^from:\s", re.IGNORECASE)
_HEADER_NEXT = re.compile(r"^(?:sent|date|to|subject):\s", re.IGNORECASE)
_HEADER_BLOCK_LINES = 4


def own_text(walk: Walk, defects: Defects) -> str:
    """The text the sender wrote in this message: the top of its own first text part, which
    the walk of its parts found (``walk.own``).

    Decided in this order, each rule a case that is *not* the sender's own text:

    - Enclosed messages (``message/rfc822``, ``message/global``, ``message/news``): a forward
      as attachment, or a message filed whole; nothing inside one is ever read, however deep.
    - Attachments: any part with ``Content-Disposition: attachment`` or a filename, any part
      whose subtype is not ``plain`` or ``html`` (``text/rfc822-headers`` included), and the
      signature of a ``multipart/signed``.
    - Parts after the first text part: only the first text leaf outside enclosed messages and
      attachments is read, in document order (the plain alternative, when it comes first as
      clients write it). No such part: no text.
    - HTML is converted with every ``<blockquote>`` line written as a ``> `` quote line.
    - Quoted and forwarded text: the text ends at the first line that is a ``>`` quote,
      an attribution ("On ... wrote:", also folded over two lines), Outlook's
      "-----Original Message-----" or its ``____`` rule or a "From:" header block
      followed by "Sent:"/"Date:", Gmail's "---------- Forwarded message ---------",
      Thunderbird's "-------- Forwarded Message --------", or Apple Mail's
      "Begin forwarded message:".

    At most MAX_OWN_TEXT characters are returned; line endings are ``\\n``; control characters
    (but tab and newline) and lone surrogates are dropped.
    """
    part = walk.own
    if part is None:
        return ""
    text = walk.text_of(part, defects)
    if any(html is part for html in walk.html):
        text = walk.html_as_text(text, defects)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Controls and lone surrogates (UTF-7 can encode one) are no text anyone wrote, and a
    # database refuses them.
    text = BODY_JUNK.sub("", text[: MAX_OWN_TEXT * 4])
    return above_quotes(text)[:MAX_OWN_TEXT]


def above_quotes(text: str) -> str:
    """The lines of ``text`` before the first line that starts quoted or forwarded text."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if _starts_quote(line.strip(), lines, index):
            return "\n".join(lines[:index])
    return text


def _starts_quote(line: str, lines: list[str], index: int) -> bool:
    if not line:
        return False
    if _QUOTE_MARKERS.match(line) or _ATTRIBUTION.match(line):
        return True
    folded = index + 1 < len(lines) and line.lower().startswith(("on ", "am ", "le ", "el "))
    if folded and _ATTRIBUTION.match(f"{line} {lines[index + 1].strip()}"):
        return True
    if _HEADER_FROM.match(line):
        following = lines[index + 1 : index + 1 + _HEADER_BLOCK_LINES]
        return any(_HEADER_NEXT.match(other.strip()) for other in following)
    return False
