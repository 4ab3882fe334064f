"""HTML as plain text, with quoted HTML written as ``> `` quote lines. Pure; never raises."""

from __future__ import annotations

import re

from inscriptis import get_annotated_text
from inscriptis.model.config import ParserConfig

from mailbot.mail.defects import Defects

MAX_HTML = 256 * 1024  # characters of HTML converted to text (inscriptis: ~0.7 s per MB)

_TAG = re.compile(r"<[^>]*>")
_QUOTE_RULES = ParserConfig(annotation_rules={"blockquote": ["quote"]})


def html_to_text(html: str, defects: Defects) -> str:
    """HTML as text, with every line of a ``<blockquote>`` written as a ``> `` quote line.

    A plain conversion only indents quoted HTML, and the indent is lost as soon as a line is
    stripped: a reply bottom-posted under a quote would then begin with the quoted text.
    """
    if len(html) > MAX_HTML:
        defects.add(f"HTML over {MAX_HTML} characters: only the start converted to text")
        html = html[:MAX_HTML]
    try:
        converted = get_annotated_text(html, _QUOTE_RULES)
    except Exception as exc:
        defects.add(f"HTML conversion failed ({type(exc).__name__})")
        return _TAG.sub(" ", html)
    text = str(converted.get("text", ""))
    spans = sorted((int(start), int(end)) for start, end, *_ in converted.get("label", ()))
    return _mark_quoted_lines(text, spans) if spans else text


def _mark_quoted_lines(text: str, spans: list[tuple[int, int]]) -> str:
    """Prefix ``> `` to each non-empty line that overlaps one of ``spans`` (sorted by start).

    The first span, in start order, that has not ended before a line begins overlaps the line
    when it starts before the line ends; no later span can overlap it without that one too."""
    out: list[str] = []
    pos = 0
    index = 0
    for line in text.split("\n"):
        end = pos + len(line)
        while index < len(spans) and spans[index][1] <= pos:
            index += 1
        quoted = index < len(spans) and spans[index][0] < end
        out.append("> " + line.strip() if quoted and line.strip() else line)
        pos = end + 1
    return "\n".join(out)
