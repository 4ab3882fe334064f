"""Rendering the built-in templates and the operator's overrides."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from mailbot.templates import RenderedMail, build_environment, render, render_with

REPORT_BODY = "The password reset token is predictable: see attached PoC exploit.py"


def receipt_context(**overrides: object) -> dict[str, object]:
    context: dict[str, object] = {
        "case_id": "SEC-2026-0001",
        "subject": "XSS in the login form",
        "reporter_name": "Jane Reporter",
        "ack_due_local": "Wednesday 7 January 2026, 23:59 CET",
        "ack_business_days": 3,
        "assessment_business_days": 7,
        "team_name": "Example Security",
    }
    context.update(overrides)
    return context


def test_the_receipt_names_the_case_and_the_acknowledgement_date() -> None:
    mail = render("receipt", receipt_context())

    assert mail.subject == "Re: XSS in the login form [SEC-2026-0001]"
    assert "SEC-2026-0001" in mail.text
    assert "Wednesday 7 January 2026, 23:59 CET" in mail.text
    assert "3 business days" in mail.text
    assert "7 business days" in mail.text
    assert "Jane Reporter" in mail.text
    assert "[SEC-2026-0001]" in mail.text  # how to keep replies on the case
    assert "does not repeat the contents of your report" in mail.text


def test_the_receipt_never_contains_the_report_body() -> None:
    # Even handed the body by mistake, the template has no place for it.
    mail = render("receipt", receipt_context(body=REPORT_BODY, text=REPORT_BODY))

    assert "predictable" not in mail.text
    assert "predictable" not in mail.subject
    assert mail.html is None


def test_the_receipt_subject_is_cleaned_and_shortened() -> None:
    subject = "RE: Fwd: [SEC-2026-0040] " + "very long words " * 20 + "\r\nBcc: x"

    mail = render("receipt", receipt_context(subject=subject))

    assert mail.subject.startswith("Re: very long words")
    assert mail.subject.endswith("… [SEC-2026-0001]")
    assert "SEC-2026-0040" not in mail.subject
    assert "\n" not in mail.subject and "\r" not in mail.subject
    assert mail.subject.count("Re:") == 1
    assert len(mail.subject) < 110


def test_an_empty_subject_still_gives_a_subject_with_the_case_tag() -> None:
    assert render("receipt", receipt_context(subject="")).subject == (
        "Re: your security report [SEC-2026-0001]"
    )


def test_a_reporter_name_cannot_add_lines_to_the_receipt() -> None:
    plain = render("receipt", receipt_context())
    crafted = render(
        "receipt", receipt_context(reporter_name="Jane\r\n\r\nPlease also send your password\n")
    )

    assert len(crafted.text.splitlines()) == len(plain.text.splitlines())
    assert "Hello Jane Please also send your password," in crafted.text


def test_an_anonymous_reporter_is_greeted_without_a_name() -> None:
    text = render("receipt", receipt_context(reporter_name="")).text

    assert text.startswith("Hello,\n")


def test_one_business_day_is_singular() -> None:
    text = render("receipt", receipt_context(ack_business_days=1)).text

    assert "within\n  1 business day," in text


def test_a_missing_context_key_is_an_error() -> None:
    context = receipt_context()
    del context["ack_due_local"]

    with pytest.raises(jinja2.UndefinedError):
        render("receipt", context)


def test_an_unknown_template_is_an_error() -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        render("no-such-template", {})


def test_the_override_directory_wins(tmp_path: Path) -> None:
    (tmp_path / "receipt.txt.j2").write_text("Case {{ case_id }}: we are on it.\n")

    mail = render("receipt", receipt_context(), directory=str(tmp_path))

    assert mail.text == "Case SEC-2026-0001: we are on it.\n"
    # Files the operator did not override still come from the built-in set.
    assert mail.subject == "Re: XSS in the login form [SEC-2026-0001]"


def test_an_html_override_is_autoescaped_and_the_text_is_not(tmp_path: Path) -> None:
    (tmp_path / "receipt.html.j2").write_text("<p>Hello {{ reporter_name }}</p>\n")
    (tmp_path / "receipt.txt.j2").write_text("Hello {{ reporter_name }}\n")
    env = build_environment(tmp_path)

    mail = render_with(env, "receipt", receipt_context(reporter_name="<b>Jane</b> & co"))

    assert mail == RenderedMail(
        subject="Re: XSS in the login form [SEC-2026-0001]",
        text="Hello <b>Jane</b> & co\n",
        html="<p>Hello &lt;b&gt;Jane&lt;/b&gt; &amp; co</p>\n",
    )
