"""Rendering outgoing mail from Jinja2 templates (pure: the same context gives the same text).

A template set is ``<name>.subject.j2``, ``<name>.txt.j2`` and, optionally, ``<name>.html.j2``.
Files in the operator's override folder (``[templates] directory``) win over the built-in ones in
``templates/``, name by name, so an operator can replace just the receipt's wording.

Values that come from a reporter (their subject, their name) must go through the ``oneline``
filter: ``{{ subject | oneline(80) }}``. It removes line breaks and control characters, so a
crafted subject can never add a line to the body. HTML templates are autoescaped as well.
Undefined variables are errors (StrictUndefined), never silently empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from mailbot.mail.compose import clean_header
from mailbot.resources import resource_dir

_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|fw|fwd|wg)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
# Any case tag such as [SEC-2026-0042], whatever the prefix (config.py allows 1-16 of A-Z0-9).
_CASE_TAG = re.compile(r"\[[A-Z][A-Z0-9]{0,15}-\d{4}-\d+\]")


@dataclass(frozen=True)
class RenderedMail:
    subject: str  # one clean line
    text: str
    html: str | None


def oneline(value: object, limit: int = 200) -> str:
    """A single clean line of at most ``limit`` characters (the ``oneline`` filter)."""
    return clean_header("" if value is None else str(value), limit)


def strip_reply_prefix(value: object) -> str:
    """``Re: Fwd: hello`` -> ``hello``, so that a receipt says ``Re: hello`` only once."""
    return _REPLY_PREFIX.sub("", oneline(value, 998))


def without_case_tags(value: object) -> str:
    """The text minus any ``[SEC-2026-0042]`` tags, so that our mail carries exactly one."""
    return oneline(_CASE_TAG.sub(" ", oneline(value, 998)), 998)


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


def build_environment(override_dir: str | Path = "") -> jinja2.Environment:
    """The Jinja2 environment: the override folder first (when given), then the built-ins."""
    loaders: list[jinja2.BaseLoader] = []
    if override_dir:
        loaders.append(jinja2.FileSystemLoader(str(override_dir)))
    loaders.append(jinja2.FileSystemLoader(str(resource_dir("templates"))))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["oneline"] = oneline
    env.filters["strip_reply_prefix"] = strip_reply_prefix
    env.filters["without_case_tags"] = without_case_tags
    return env


@lru_cache(maxsize=8)
def _environment(override_dir: str) -> jinja2.Environment:
    return build_environment(override_dir)


def render(name: str, context: Mapping[str, object], *, directory: str = "") -> RenderedMail:
    """Render the template set ``name``; ``directory`` is the override folder ("" = none).

    Raises jinja2.TemplateNotFound when the subject or text template is missing and
    jinja2.UndefinedError when the context lacks a variable the template uses.
    """
    return render_with(_environment(str(directory)), name, context)


def render_with(env: jinja2.Environment, name: str, context: Mapping[str, object]) -> RenderedMail:
    """``render`` with an environment of the caller's own (tests, a config check)."""
    values = dict(context)
    subject = env.get_template(f"{name}.subject.j2").render(values)
    text = env.get_template(f"{name}.txt.j2").render(values)
    try:
        html_template = env.get_template(f"{name}.html.j2")
    except jinja2.TemplateNotFound:
        html = None
    else:
        html = html_template.render(values)
    return RenderedMail(subject=oneline(subject, 998), text=text, html=html)
