"""Jinja2 for the pages: autoescaped HTML, and no invisible character left invisible.

Every value printed by a template goes through ``finalize``: besides HTML escaping (autoescape),
bidirectional controls and other invisible format characters are shown as ``[U+202E]`` instead of
reordering the text around them, so a file name such as ``invoice\\u202efdp.exe`` cannot pose as
``invoiceexe.pdf``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]")


def visible(value: str) -> str:
    return _INVISIBLE.sub(lambda m: f"[U+{ord(m.group()):04X}]", value)


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def environment(tz: tzinfo) -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = lambda at: _local(at, tz)
    env.filters["span"] = span
    env.filters["size"] = size
    return env


def _local(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else ""


def span(delta: timedelta) -> str:
    """A duration the way people say it: ``3 d 4 h``, ``5 h 10 min``, ``12 min``."""
    seconds = abs(int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def size(n: int | None) -> str:
    if n is None:
        return ""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"
