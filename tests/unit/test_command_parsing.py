"""Email commands as text: only whole lines at the very top, parsed without touching a case."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.cases.commands import MAX_COMMANDS, Command, parse_assess_args, parse_commands
from mailbot.cases.service import TransitionRefused, case_tag_pattern


def names(body: str) -> list[str]:
    return [c.name for c in parse_commands(body)]


def test_every_documented_command_is_read_with_its_arguments() -> None:
    body = (
        "/ack\n/assess severity=high target=2026-12-15\n/resolve\n/close duplicate\n/reopen\n"
        '/duplicate SEC-2026-0040\n/cve CVE-2026-12345\n/credit "Jane Doe"\n'
    )

    assert parse_commands(body) == [
        Command("ack", (), "/ack"),
        Command(
            "assess",
            ("severity=high", "target=2026-12-15"),
            "/assess severity=high target=2026-12-15",
        ),
        Command("resolve", (), "/resolve"),
        Command("close", ("duplicate",), "/close duplicate"),
        Command("reopen", (), "/reopen"),
        Command("duplicate", ("SEC-2026-0040",), "/duplicate SEC-2026-0040"),
        Command("cve", ("CVE-2026-12345",), "/cve CVE-2026-12345"),
        Command("credit", ("Jane Doe",), '/credit "Jane Doe"'),
    ]


def test_blank_lines_before_the_commands_are_skipped() -> None:
    assert names("\n\n  /ack  \r\n/resolve\r\n") == ["ack", "resolve"]


def test_the_command_name_is_case_insensitive() -> None:
    assert names("/ACK\n/Resolve\n") == ["ack", "resolve"]


def test_the_first_line_of_text_ends_the_commands() -> None:
    assert names("/ack\nThanks, looking at it.\n/close spam\n") == ["ack"]


def test_a_blank_line_after_commands_ends_them() -> None:
    assert names("/ack\n\n/close spam\n") == ["ack"]


@pytest.mark.parametrize(
    "body",
    [
        "Hello team,\n/close spam\n",
        "> /close spam\n",
        "On Monday Rita wrote:\n> /ack\n",
        "//close spam\n",
        "",
        "\n\n",
    ],
)
def test_commands_below_text_or_quoted_are_not_commands(body: str) -> None:
    assert parse_commands(body) == []


def test_at_most_max_commands_are_read() -> None:
    assert len(parse_commands("/ack\n" * (MAX_COMMANDS + 5))) == MAX_COMMANDS


def test_unbalanced_quotes_keep_the_line_for_a_refusal_with_a_reason() -> None:
    [command] = parse_commands('/close "spam\n')

    assert command.args == ('"spam',)


@given(st.text(max_size=300))
def test_parsing_any_text_never_raises_and_only_yields_slash_lines(body: str) -> None:
    for command in parse_commands(body):
        assert command.line.startswith("/")
        assert "\n" not in command.line


def test_assess_arguments_give_severity_and_target() -> None:
    assert parse_assess_args(("severity=HIGH", "target=2026-12-15")) == ("high", date(2026, 12, 15))
    assert parse_assess_args(("severity=low",)) == ("low", None)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((), "needs severity"),
        (("target=2026-12-15",), "needs severity"),
        (("severity=high", "target=15/12/2026"), "target must be a date"),
        (("severity=high", "due=2026-12-15"), "takes severity=... and target"),
        (("high",), "takes severity=... and target"),
    ],
)
def test_bad_assess_arguments_are_refused_with_a_reason(args: tuple[str, ...], reason: str) -> None:
    with pytest.raises(TransitionRefused, match=reason):
        parse_assess_args(args)


# The tag that places a participant's message on a case: "[SEC-2026-0042]" in the subject.
TAG = case_tag_pattern("SEC")


@pytest.mark.parametrize(
    ("subject", "tags"),
    [
        ("Re: [SEC-2026-0042] XSS", ["SEC-2026-0042"]),
        ("[SEC-2026-0042]", ["SEC-2026-0042"]),
        ("Fwd: [SEC-2026-0001] and [SEC-2026-12345]", ["SEC-2026-0001", "SEC-2026-12345"]),
        ("SEC-2026-0042 without brackets", []),
        ("[SEC-2026-42] too few digits", []),
        ("[SEC-26-0042] short year", []),
        ("[XSEC-2026-0042] another prefix", []),
        ("[SEC-2026-0042x]", []),
        ("[ SEC-2026-0042 ]", []),
    ],
)
def test_the_case_tag_is_the_bracketed_id_and_nothing_like_it(
    subject: str, tags: list[str]
) -> None:
    assert TAG.findall(subject) == tags


def test_a_prefix_with_regex_characters_is_taken_literally() -> None:
    pattern = case_tag_pattern("A.B")

    assert pattern.findall("[A.B-2026-0001]") == ["A.B-2026-0001"]
    assert pattern.findall("[AxB-2026-0001]") == []
