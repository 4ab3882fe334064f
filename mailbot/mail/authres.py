"""Authentication-Results header fields (RFC 8601), read tolerantly. Pure; never raises.

    Authentication-Results: mx.example.com 1; dkim=pass (good sig) header.d=example.com
        header.s=sel; dmarc=pass (p=none) header.from=example.com; spf=none

The first element is the authserv-id (the server that did the checks), an optional version
follows; each ``;`` starts a resinfo: ``method=result``, an optional ``reason=...``, then
``ptype.property=value`` pairs. Comments in parentheses (nested, with backslash escapes) are
dropped, quoted strings are unquoted, and anything that does not fit is skipped rather than
guessed at, so junk can only ever remove results, never add one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_VALUE = 8 * 1024  # longer fields are cut; real ones are a few hundred characters


@dataclass(frozen=True)
class AuthResult:
    method: str  # lower-case, version dropped: "dkim", "dmarc", "spf", ...
    result: str  # lower-case: "pass", "fail", "none", ...
    properties: dict[str, str] = field(default_factory=dict)  # "header.d" -> "example.com"

    def domain(self, prop: str) -> str | None:
        """The domain a property names (``header.i=@example.com`` -> ``example.com``), or None."""
        value = self.properties.get(prop)
        if value is None:
            return None
        return value.rpartition("@")[2].rstrip(".").lower()


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str  # lower-case
    results: tuple[AuthResult, ...]


def parse_authentication_results(value: str) -> AuthResults | None:
    """One Authentication-Results value, or None when not even an authserv-id can be read."""
    groups = _groups(_tokens(value[:MAX_VALUE]))
    head = groups[0]
    if not head or head[0] is _EQUALS or not head[0].strip():
        return None
    results = tuple(r for r in (_resinfo(g) for g in groups[1:]) if r is not None)
    return AuthResults(authserv_id=str(head[0]).lower(), results=results)


class _Separator(str):
    """``;`` or ``=`` as syntax; a quoted ``";"`` is a plain str and never one of these."""


_SEMI = _Separator(";")
_EQUALS = _Separator("=")


def _tokens(value: str) -> list[str]:
    """Words, quoted strings (unquoted), and the separators; comments dropped."""
    tokens: list[str] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            i = _skip_comment(value, i)
        elif ch == '"':
            word, i = _quoted(value, i)
            tokens.append(word)
        elif ch == ";":
            tokens.append(_SEMI)
            i += 1
        elif ch == "=":
            tokens.append(_EQUALS)
            i += 1
        elif ch == ")":  # a comment that never opened: junk, skipped
            i += 1
        else:
            start = i
            while i < n and not value[i].isspace() and value[i] not in '();="':
                i += 1
            tokens.append(value[start:i])
    return tokens


def _skip_comment(value: str, i: int) -> int:
    depth = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _quoted(value: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    i += 1
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    return "".join(out), i


def _groups(tokens: list[str]) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    for token in tokens:
        if token is _SEMI:
            groups.append([])
        else:
            groups[-1].append(token)
    return groups


def _resinfo(tokens: list[str]) -> AuthResult | None:
    pairs = _pairs(tokens)
    if not pairs:
        return None
    method, result = pairs[0]
    return AuthResult(
        method=method.partition("/")[0].lower(),
        result=result.lower(),
        properties={key: value for key, value in pairs[1:] if "." in key},
    )


def _pairs(tokens: list[str]) -> list[tuple[str, str]]:
    """``key = value`` in order; stray tokens are skipped."""
    pairs: list[tuple[str, str]] = []
    i = 0
    while i + 2 < len(tokens):
        key, eq, value = tokens[i], tokens[i + 1], tokens[i + 2]
        if key is not _EQUALS and eq is _EQUALS and value is not _EQUALS:
            pairs.append((key.lower(), str(value)))
            i += 3
        else:
            i += 1
    return pairs
