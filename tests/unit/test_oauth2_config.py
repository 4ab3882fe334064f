"""``auth = "oauth2"`` and the ``[oauth2]`` table: defaults, overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.config import settings_from_mapping
from mailbot.errors import ConfigError

MICROSOFT = {"provider": "microsoft", "tenant_id": "t-1", "client_id": "c-1",
             "client_secret_env": "APP_SECRET"}


def config(oauth2: dict[str, object] | None = None, **sections: dict[str, object]
           ) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = {
        "mailbox": {"host": "outlook.office365.com", "username": "security@example.com",
                    "auth": "oauth2"},
        "smtp": {"host": "smtp.office365.com", "from": "Security <security@example.com>",
                 "auth": "oauth2"},
        "oauth2": dict(MICROSOFT if oauth2 is None else oauth2),
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


def error_for(data: dict[str, dict[str, object]], environ: dict[str, str] | None = None
              ) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data, environ={"APP_SECRET": "s"} if environ is None else environ)
    return caught.value


def test_password_stays_the_default_and_needs_no_oauth2_table() -> None:
    settings = settings_from_mapping(
        {"mailbox": {"host": "h", "username": "u@example.com", "password": "p"},
         "smtp": {"host": "s", "from": "u@example.com"}}, environ={})
    assert settings.mailbox.auth == "password"
    assert settings.mailbox.oauth2 is None
    assert settings.smtp.oauth2 is None


def test_microsoft_gets_the_outlook_scope_and_needs_no_password() -> None:
    settings = settings_from_mapping(config(), environ={"APP_SECRET": "app-secret"})
    oauth2 = settings.mailbox.oauth2
    assert oauth2 is not None
    assert oauth2.scope == "https://outlook.office365.com/.default"
    assert oauth2.client_secret == "app-secret"
    assert oauth2.mechanism == "xoauth2"
    assert settings.mailbox.password == ""
    assert settings.smtp.username == "security@example.com"  # from `from`
    assert settings.smtp.oauth2 == oauth2  # shared, so one token serves both
    assert "app-secret" not in repr(settings)


def test_a_side_table_overrides_the_shared_one(tmp_path: Path) -> None:
    helper = {"provider": "command", "token_command": ["get-token", "smtp"]}
    settings = settings_from_mapping(config(smtp={"oauth2": helper}),
                                     environ={"APP_SECRET": "s"}, base_dir=tmp_path)
    assert settings.mailbox.oauth2 is not None and settings.mailbox.oauth2.provider == "microsoft"
    assert settings.smtp.oauth2 is not None
    assert settings.smtp.oauth2.token_command == ("get-token", "smtp")


def test_google_subject_defaults_to_the_mailbox_and_paths_are_relative(tmp_path: Path) -> None:
    (tmp_path / "sa.json").write_text("{}")
    data = config({"provider": "google", "service_account_file": "sa.json"})
    settings = settings_from_mapping(data, environ={}, base_dir=tmp_path)
    oauth2 = settings.mailbox.oauth2
    assert oauth2 is not None
    assert oauth2.subject == "security@example.com"
    assert oauth2.service_account_file == str(tmp_path / "sa.json")
    assert oauth2.scope == "https://mail.google.com/"


@pytest.mark.parametrize(("data", "key", "expected"), [
    (config({"provider": "yahoo"}), "oauth2.provider", "microsoft, google"),
    (config({**MICROSOFT, "mechanism": "plain"}), "oauth2.mechanism", "xoauth2"),
    (config({"provider": "microsoft", "tenant_id": "t", "client_id": "c"}),
     "oauth2.client_secret_env", "certificate_file"),
    (config({**MICROSOFT, "tenant_id": ""}), "oauth2.tenant_id", "non-empty"),
    (config({**MICROSOFT, "authority": "http://login.example.com"}), "oauth2.authority",
     "https://"),
    (config({**MICROSOFT, "certificate_file": "/nonexistent.pem"}), "oauth2.certificate_file",
     "readable file"),
    (config({"provider": "google", "service_account_file": "/nonexistent.json"}),
     "oauth2.service_account_file", "readable file"),
    (config({"provider": "refresh_token", "client_id": "c", "refresh_token_file": "rt"}),
     "oauth2.token_url", "required"),
    (config({"provider": "command", "token_command": "get-token"}), "oauth2.token_command",
     "a program and its arguments"),
    (config({**MICROSOFT, "tenant": "x"}), "oauth2.tenant", "one of the keys"),
    (config(mailbox={"oauth2": {"tenant_id": ""}}), "mailbox.oauth2.tenant_id", "non-empty"),
    (config(smtp={"oauth2": {"client": "x"}}), "smtp.oauth2.client", "one of the keys"),
    (config(mailbox={"auth": "token"}), "mailbox.auth", "password, oauth2"),
])
def test_a_bad_oauth2_value_names_the_key(data: dict[str, dict[str, object]], key: str,
                                           expected: str) -> None:
    error = error_for(data)
    assert error.key == key
    assert expected in str(error)


def test_a_missing_client_secret_variable_is_named() -> None:
    error = error_for(config(), environ={})
    assert error.key == "oauth2.client_secret_env"
    assert "APP_SECRET" in str(error)


def test_oauth2_without_an_oauth2_table_is_named() -> None:
    data = config()
    del data["oauth2"]
    assert error_for(data).key == "oauth2.provider"
