"""The config file: every key validated, every error naming the key and what was expected."""

from __future__ import annotations

import tomllib
from datetime import date, time
from pathlib import Path

import pytest

from mailbot.config import load_settings, settings_from_mapping
from mailbot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = {
    "mailbox": {"host": "imap.example.com", "username": "security@example.com",
                "password_env": "IMAP_PW"},
    "smtp": {"host": "smtp.example.com", "from": "Security <security@example.com>"},
}
ENV = {"IMAP_PW": "s3cret"}


def with_values(**sections: dict[str, object]) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = {name: dict(values) for name, values in MINIMAL.items()}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


def error_for(data: dict[str, dict[str, object]], environ: dict[str, str] = ENV) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data, environ=environ)
    return caught.value


def test_the_example_config_documents_and_accepts_every_key() -> None:
    settings = load_settings(ROOT / "config.example.toml",
                             environ={"MAILBOT_IMAP_PASSWORD": "x", "MAILBOT_SMTP_PASSWORD": "y"})
    assert settings.mailbox.password == "x"
    assert settings.smtp.password == "y"
    assert settings.policy.timezone == "Europe/Amsterdam"
    assert settings.policy.business_hours == (time(9), time(17))
    assert settings.policy.holidays == (date(2026, 12, 25),)
    assert settings.own_address == "security@example.com"
    text = (ROOT / "config.example.toml").read_text()
    data = tomllib.loads(text)
    for section, values in data.items():
        for key in values:
            assert f"\n{key} = " in text or f"\n# {key} = " in text, f"{section}.{key}"


def test_minimal_config_gets_the_documented_defaults() -> None:
    settings = settings_from_mapping(MINIMAL, environ=ENV)
    assert settings.policy.ack_business_days == 3
    assert settings.policy.assessment_business_days == 7
    assert settings.policy.receipts_per_sender_per_day == 5
    assert settings.mailbox.folder == "INBOX"
    assert settings.mailbox.sent_folder == "Sent"
    assert settings.database.url == "sqlite:///mailbot.db"


@pytest.mark.parametrize(("data", "key", "expected"), [
    (with_values(policy={"timezone": "Mars/Base"}), "policy.timezone", "IANA timezone"),
    (with_values(policy={"workdays": ["mon", "funday"]}), "policy.workdays", "day names"),
    (with_values(policy={"ack_business_days": "three"}), "policy.ack_business_days",
     "whole number"),
    (with_values(policy={"business_hours": "17:00-09:00"}), "policy.business_hours",
     "start before the end"),
    (with_values(policy={"holidays": ["2026-13-45"]}), "policy.holidays", "a date"),
    (with_values(policy={"case_prefix": "sec-"}), "policy.case_prefix", "upper-case"),
    (with_values(mailbox={"port": 99999}), "mailbox.port", "port number"),
    (with_values(mailbox={"security": "ssl"}), "mailbox.security", "tls, starttls, none"),
    (with_values(mailbox={"security": "none"}), "mailbox.security", "loopback"),
    (with_values(mailbox={"idle": "yes"}), "mailbox.idle", "true or false"),
    (with_values(smtp={"from": "not an address"}), "smtp.from", "an address"),
    (with_values(team={"addresses": ["alice"]}), "team.addresses", "email addresses"),
    (with_values(oncall={"rotation": ["a@example.com"]}), "oncall.rotation_start", "a date"),
    (with_values(policy={"holiday_country": "XX"}), "policy.holiday_country", "country code"),
    (with_values(polcy={"timezone": "UTC"}), "polcy", "one of the sections"),
    (with_values(policy={"timezon": "UTC"}), "policy.timezon", "one of the keys"),
    (with_values(policy={"duplicate_similarity_percent": 101}),
     "policy.duplicate_similarity_percent", "from 0 to 100"),
    (with_values(policy={"duplicate_similarity_percent": -1}),
     "policy.duplicate_similarity_percent", "at least 0"),
    (with_values(policy={"duplicate_similarity_percent": 0.25}),
     "policy.duplicate_similarity_percent", "whole number"),
])
def test_a_bad_value_names_the_key_and_what_was_expected(
    data: dict[str, dict[str, object]], key: str, expected: str
) -> None:
    error = error_for(data)
    assert error.key == key
    assert expected in str(error)
    assert str(error).startswith(key)


def test_duplicate_detection_is_on_at_25_percent_unless_told_and_0_turns_it_off() -> None:
    assert settings_from_mapping(MINIMAL, environ=ENV).policy.duplicate_similarity_percent == 25
    for percent in (0, 40, 100):
        data = with_values(policy={"duplicate_similarity_percent": percent})
        assert settings_from_mapping(data, environ=ENV).policy.duplicate_similarity_percent \
            == percent


def test_a_missing_required_key_is_named() -> None:
    data = with_values()
    del data["mailbox"]["host"]
    assert error_for(data).key == "mailbox.host"


def test_password_env_that_is_not_set_is_named() -> None:
    error = error_for(with_values(), environ={})
    assert error.key == "mailbox.password_env"
    assert "IMAP_PW" in str(error)


def test_password_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "imap.secret").write_text("from-file\n")
    config = tmp_path / "mailbot.toml"
    config.write_text(
        '[mailbox]\nhost = "imap.example.com"\nusername = "s@example.com"\n'
        'password_file = "imap.secret"\n'
        '[smtp]\nhost = "smtp.example.com"\nfrom = "s@example.com"\n')
    assert load_settings(config, environ={}).mailbox.password == "from-file"


def test_an_inline_password_works_but_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    data = with_values(mailbox={"password": "inline"})
    del data["mailbox"]["password_env"]
    settings = settings_from_mapping(data, environ={})
    assert settings.mailbox.password == "inline"
    assert "prefer password_env" in caplog.text
    assert "inline" not in caplog.text


def test_passwords_never_show_in_the_settings_repr() -> None:
    settings = settings_from_mapping(with_values(secrets={"token_key": "tok"}), environ=ENV)
    assert "s3cret" not in repr(settings)
    assert "tok" not in repr(settings.secrets)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[mailbox\nhost=")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_settings(config)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"copy config\.example\.toml .*--config PATH"):
        load_settings(tmp_path / "nope.toml")


def test_settings_without_server_secrets_need_no_password_set() -> None:
    data = with_values(smtp={"username": "bot", "password_env": "SMTP_PW"})
    with pytest.raises(ConfigError, match=r"mailbox\.password_env"):
        settings_from_mapping(data, environ={})
    settings = settings_from_mapping(data, environ={}, secrets=frozenset())
    assert settings.mailbox.password == "" and settings.smtp.password == ""
    only_smtp = settings_from_mapping(data, environ={"SMTP_PW": "p"}, secrets=frozenset({"smtp"}))
    assert only_smtp.smtp.password == "p" and only_smtp.mailbox.password == ""


def test_the_settings_remember_which_key_holds_each_password(tmp_path: Path) -> None:
    settings = settings_from_mapping(MINIMAL, environ=ENV)
    assert settings.mailbox.password_key == "mailbox.password_env (IMAP_PW)"
    (tmp_path / "pw").write_text("x")
    from_file = settings_from_mapping(
        with_values(mailbox={"password_env": None, "password_file": "pw"}),
        environ={}, base_dir=tmp_path)
    assert from_file.mailbox.password_key == "mailbox.password_file"


def test_parse_processes_are_automatic_unless_told_and_never_negative() -> None:
    assert settings_from_mapping(MINIMAL, environ=ENV).mailbox.parse_processes is None
    for count in (0, 3):
        data = with_values(mailbox={"parse_processes": count})
        assert settings_from_mapping(data, environ=ENV).mailbox.parse_processes == count
    assert error_for(with_values(mailbox={"parse_processes": -1})).key \
        == "mailbox.parse_processes"
