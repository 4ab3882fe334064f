"""A From that imitates the team: flagged like unauthenticated team mail, never trusted."""

from __future__ import annotations

import pytest

from mailbot.config import MailboxSettings, Settings, SmtpSettings, TeamSettings
from mailbot.intake.classify import classify
from mailbot.intake.rules import imitates_team, is_trusted_team
from mailbot.mail.message import InboundMessage
from mailbot.mail.parse import parse_message

TEAM = TeamSettings(
    addresses=("alice@partner.example",),
    domains=("team.example.test",),
    authserv_id="mx.example.test",
)
EVIL_PASS = "Authentication-Results: mx.example.test; dmarc=pass header.from=evil.example"


def with_from(*froms: str, extra: tuple[str, ...] = ()) -> InboundMessage:
    fields = [f"From: {value}" for value in froms]
    fields += ["To: rita@reporter.example", "Subject: Re: your report", *extra]
    return parse_message(("\r\n".join(fields) + "\r\n\r\nHello.\r\n").encode("utf-8"))


IMITATIONS = [
    '"alice@partner.example" <mallory@evil.example>',
    "alice@partner.example <mallory@evil.example>",
    "=?utf-8?q?alice=40partner=2Eexample?= <mallory@evil.example>",
    "=?utf-8?q?alice?=@partner.example",
    "mallory@evil.example (alice@partner.example)",
    "alice@partner.example@evil.example",
    '"Bob" <bob@team.example.test.evil.example>',
    "Bob <bob@team.example.test@evil.example>",
    '"bob@TEAM.example.test" <mallory@evil.example>',
    '"alice＠partner.example" <mallory@evil.example>',  # fullwidth at sign
    '"alice@partner\u200b.example" <mallory@evil.example>',  # zero-width space
    "alice@partner.example, mallory@evil.example",
]


@pytest.mark.parametrize("sender", IMITATIONS)
def test_a_from_that_spells_the_team_imitates_it_and_is_never_trusted(sender: str) -> None:
    msg = with_from(sender, extra=(EVIL_PASS,))

    assert imitates_team(msg, TEAM).yes
    assert not is_trusted_team(msg, TEAM, in_sent_folder=False).yes


def test_a_second_from_field_naming_the_team_imitates_it() -> None:
    msg = with_from("mallory@evil.example", "Alice <alice@partner.example>")

    assert imitates_team(msg, TEAM).yes
    assert not is_trusted_team(msg, TEAM, in_sent_folder=False).yes


@pytest.mark.parametrize(
    "sender",
    [
        "Alice <alice@partner.example>",  # the team itself: claims, not imitates
        "Bob <bob@team.example.test>",
        "Rita Reporter <rita@reporter.example>",
        "Team Example Test <bob@sub.team.example.test>",  # a subdomain, not "@team.example.test"
        '"partner.example fan" <fan@elsewhere.example>',  # no address spelled
    ],
)
def test_a_plain_from_does_not_imitate_the_team(sender: str) -> None:
    assert not imitates_team(with_from(sender), TEAM).yes


def test_the_reason_quotes_what_the_sender_wrote() -> None:
    verdict = imitates_team(with_from('"alice@partner.example" <m@evil.example>'), TEAM)

    assert "alice@partner.example" in verdict.reason


def test_an_imitation_is_classified_as_untrusted_team_mail() -> None:
    settings = _settings()
    facts = classify(with_from("alice@partner.example <m@evil.example>"), "INBOX", settings)

    assert facts.untrusted_team
    assert "unauthenticated-team" in facts.flags()
    assert "alice@partner.example" in facts.trust_reason
    assert not facts.from_team


def test_an_imitation_in_the_sent_folder_is_the_team_like_anything_there() -> None:
    facts = classify(with_from("alice@partner.example <m@evil.example>"), "Sent", _settings())

    assert facts.from_team
    assert not facts.untrusted_team


def _settings() -> Settings:
    return Settings(
        mailbox=MailboxSettings(
            host="127.0.0.1", username="security@example.test", sent_folder="Sent"
        ),
        smtp=SmtpSettings(host="127.0.0.1", from_address="security@example.test"),
        team=TEAM,
    )
