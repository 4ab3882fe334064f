"""Raw bytes -> the standard library's MIME tree, within bounds. Pure.

The stdlib feed parser checks every line against every enclosing multipart boundary, so nesting
depth x lines is its cost: ``nesting_problem`` estimates that on the raw bytes before any parser
runs. Content-Type and Content-Disposition values are bounded as they are stored, because the
stdlib's parameter parser is quadratic in the number of ``;`` and runs on every get_param(),
get_filename() and get_content_charset().
"""

from __future__ import annotations

import re
from email import errors, policy
from email.feedparser import BytesFeedParser
from email.message import Message
from email.parser import BytesParser
from typing import Any

# Content-Type / Content-Disposition: longer values, or more parameters, are cut when stored.
MAX_PARAM_FIELD = 8 * 1024
MAX_PARAMS = 64
# The feed parser's boundary checks: estimated nesting depth x lines it may cost.
NESTING_BUDGET = 10_000_000
MAX_BOUNDARY_DECLARATIONS = 64  # more, and their nesting is not worked out: assumed deep
MAX_BOUNDARY_MENTIONS = 10_000

_CHUNK = 64 * 1024
_PARAM_FIELDS = frozenset({"content-type", "content-disposition"})
_BOUNDARY_PARAM = re.compile(rb'boundary[ \t]*=[ \t]*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))')


def parse_tree(raw: bytes) -> Message:
    """The whole message as a compat32 tree. May raise RecursionError on absurd nesting."""
    # Chunks, not BytesParser: that one makes a StringIO copy of the whole message.
    parser: BytesFeedParser[Message] = BytesFeedParser(BoundedMessage, policy=policy.compat32)
    view = memoryview(raw)
    for start in range(0, len(raw), _CHUNK):
        parser.feed(bytes(view[start : start + _CHUNK]))
    return parser.close()


def parse_header_block(header_block: bytes) -> Message:
    """A tree of the header fields only; the body is never looked at."""
    parser = BytesParser(BoundedMessage, policy=policy.compat32)
    return parser.parsebytes(header_block, headersonly=True)


def nesting_problem(raw: bytes) -> str | None:
    """Why parsing the body would cost too much (a defect to record), or None."""
    lines = max(raw.count(b"\n"), raw.count(b"\r"))
    depth = _nesting_depth(raw, lines)
    if depth * lines <= NESTING_BUDGET:
        return None
    return (
        f"multipart nesting too deep for its size (estimated {depth} levels over "
        f"{lines} lines): body not parsed"
    )


class _ParametersTruncatedDefect(errors.HeaderDefect):
    """A Content-Type or Content-Disposition was too long or had too many parameters."""


class BoundedMessage(Message):
    """A stdlib Message that cuts Content-Type and Content-Disposition values as they are stored."""

    def set_raw(self, name: str, value: Any) -> None:
        if isinstance(value, str) and name.lower() in _PARAM_FIELDS and _too_many_params(value):
            value = _bound_params(value)
            self.defects.append(_ParametersTruncatedDefect())
        super().set_raw(name, value)


def _too_many_params(value: str) -> bool:
    return len(value) > MAX_PARAM_FIELD or value.count(";") > MAX_PARAMS


def _bound_params(value: str) -> str:
    value = value[:MAX_PARAM_FIELD]
    pos = -1
    for _ in range(MAX_PARAMS):
        pos = value.find(";", pos + 1)
        if pos == -1:
            return value
    return value[:pos]


def _nesting_depth(raw: bytes, lines: int) -> int:
    """An upper estimate of how deep multiparts nest: boundaries declared and not yet closed."""
    lowered = raw.lower()
    mentions = lowered.count(b"boundary")
    if mentions * lines <= NESTING_BUDGET or mentions > MAX_BOUNDARY_MENTIONS:
        return mentions  # cheap enough whatever the nesting, or too many to look at
    declared: list[re.Match[bytes]] = []
    pos = lowered.find(b"boundary")
    while pos != -1:
        m = _BOUNDARY_PARAM.match(lowered, pos)
        if m:
            declared.append(m)
        pos = lowered.find(b"boundary", pos + 8)
    if len(declared) * lines <= NESTING_BUDGET or len(declared) > MAX_BOUNDARY_DECLARATIONS:
        return len(declared)
    events: list[tuple[int, int]] = []
    for m in declared:
        group = 1 if m.group(1) is not None else 2
        value = raw[m.start(group) : m.end(group)]  # boundaries are case-sensitive
        close = raw.find(b"--" + value + b"--", m.end())
        events += [(m.end(), 1), (close if close != -1 else len(raw), -1)]
    depth = deepest = 0
    for _, step in sorted(events):
        depth += step
        deepest = max(deepest, depth)
    return deepest
