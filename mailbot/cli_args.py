"""Argument types and the subcommand helper shared by the CLI and the packages that add
commands to it (one wording for every date error, one way to add an action to a command)."""

from __future__ import annotations

import argparse
from datetime import date, datetime
from typing import Any


def date_arg(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date such as 2026-12-15, got {value!r}") from None


def datetime_arg(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time with offset such as 2026-11-23T10:00+01:00, got {value!r}")
    return parsed


def actions_of(sub: Any, name: str, helptext: str = "") -> Any:
    """The subparsers of command ``name`` (made with ``helptext`` if the command is new), so that
    several packages can each add their actions to one command such as ``keys`` or ``cases``."""
    parser = sub.choices.get(name)
    if parser is None:
        parser = sub.add_parser(name, help=helptext,
                                description=helptext[:1].upper() + helptext[1:] + ".")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                 parser_class=type(parser))
