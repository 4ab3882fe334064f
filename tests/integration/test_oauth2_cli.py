"""``mailbot check`` and ``mailbot auth login`` with OAuth2, from a config file, end to end."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.oauth2.device import device_login
from mailbot.oauth2.settings import OAuth2Settings
from tests.servers.dovecot import ImapAccount
from tests.servers.oauth2 import TokenAuthority
from tests.servers.smtp_sink import SinkFactory, SmtpSink

CLIENT_ID, CLIENT_SECRET = "cli-client", "cli-secret-value"


def write_config(tmp_path: Path, account: ImapAccount, sink: SmtpSink,
                 provider: TokenAuthority) -> Path:
    config = tmp_path / "mailbot.toml"
    config.write_text(f"""
[mailbox]
host = "127.0.0.1"
port = {account.imap_port}
security = "none"
username = "{account.username}"
auth = "oauth2"
sent_folder = "Sent"

[smtp]
host = "127.0.0.1"
port = {sink.port}
security = "none"
from = "Security <{account.username}>"
auth = "oauth2"

[oauth2]
provider = "refresh_token"
token_url = "{provider.token_url}"
device_authorization_url = "{provider.device_url}"
client_id = "{CLIENT_ID}"
client_secret_env = "TEST_OAUTH2_SECRET"
refresh_token_file = "state/refresh-token"
scope = "offline_access mail"
ca_file = "{provider.cert.cert}"

[database]
url = "sqlite:///{tmp_path / 'mailbot.db'}"
""")
    (tmp_path / "state").mkdir()
    return config


@pytest.fixture
def configured(tmp_path: Path, oauth2_provider: TokenAuthority, oauth2_account: ImapAccount,
               smtp_sink_factory: SinkFactory, monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> Path:
    oauth2_provider.add_client(CLIENT_ID, CLIENT_SECRET)
    sink = smtp_sink_factory(token_check=oauth2_provider.valid_for)
    config = write_config(tmp_path, oauth2_account, sink, oauth2_provider)
    monkeypatch.setenv("TEST_OAUTH2_SECRET", CLIENT_SECRET)
    assert main(["--config", str(config), "migrate"]) == 0
    capsys.readouterr()
    return config


def test_auth_login_stores_the_refresh_token_and_check_then_passes(
    configured: Path, oauth2_provider: TokenAuthority, oauth2_account: ImapAccount,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refresh_file = configured.parent / "state" / "refresh-token"
    oauth2_provider.auto_approve = (oauth2_account.username, 1)  # one "pending" answer first

    assert main(["--config", str(configured), "auth", "login"]) == 0
    out = capsys.readouterr().out
    assert f"{oauth2_provider.url}/device-login" in out
    assert stat.S_IMODE(refresh_file.stat().st_mode) == 0o600
    stored = refresh_file.read_text().strip()
    assert stored in oauth2_provider.refresh_tokens
    assert stored not in out  # the secret goes to the file only

    assert main(["--config", str(configured), "check"]) == 0
    out = capsys.readouterr().out
    assert "oauth2: ok" in out and "imap: ok" in out and "smtp: ok" in out
    assert "token obtained via refresh_token" in out
    assert "expires 20" in out
    assert "imap: note: the server accepted the access token (xoauth2)" in out
    assert "smtp: note: the server accepted the access token (xoauth2)" in out
    assert oauth2_provider.grants.count("refresh_token") == 1  # one token for all three checks


def test_check_names_the_key_and_the_error_code_of_a_refusal(
    configured: Path, oauth2_provider: TokenAuthority, oauth2_account: ImapAccount,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    refresh = oauth2_provider.add_refresh_token(CLIENT_ID, oauth2_account.username)
    (configured.parent / "state" / "refresh-token").write_text(refresh)
    monkeypatch.setenv("TEST_OAUTH2_SECRET", "a-wrong-secret")

    assert main(["--config", str(configured), "check"]) == 1
    captured = capsys.readouterr()
    [line] = [x for x in captured.out.splitlines() if x.startswith("oauth2:")]
    assert "(invalid_client)" in line
    assert line.endswith("check oauth2.client_secret_env")
    assert "imap: not tried: no access token" in captured.out  # one refusal, said once
    assert oauth2_provider.grants == ["refresh_token"]
    assert "Traceback" not in captured.out + captured.err
    assert "a-wrong-secret" not in captured.out + captured.err


def test_auth_login_without_a_refresh_token_provider_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mailbot.toml"
    config.write_text('[mailbox]\nhost = "h"\nusername = "u@example.com"\npassword = "p"\n'
                      '[smtp]\nhost = "s"\nfrom = "u@example.com"\n')
    assert main(["--config", str(config), "auth", "login"]) == 2
    err = capsys.readouterr().err
    assert 'oauth2.provider = "refresh_token"' in err
    assert len(err.strip().splitlines()) == 1


def test_device_login_waits_while_pending_and_slows_down_when_told(
    oauth2_provider: TokenAuthority, oauth2_account: ImapAccount, tmp_path: Path
) -> None:
    oauth2_provider.add_client(CLIENT_ID, "")  # a public client, as most device-flow apps are
    oauth2_provider.auto_approve = (oauth2_account.username, 3)
    oauth2_provider.slow_down = True
    settings = OAuth2Settings(provider="refresh_token", token_url=oauth2_provider.token_url,
                              device_authorization_url=oauth2_provider.device_url,
                              client_id=CLIENT_ID, refresh_token_file=str(tmp_path / "rt"),
                              ca_file=str(oauth2_provider.cert.cert))
    waits: list[float] = []
    said: list[str] = []
    device_login(settings, say=said.append, sleep=waits.append)
    # slow_down, then two authorization_pending 5 s further apart each time, then the token
    assert waits == [1.0, 6.0, 6.0, 6.0]
    assert (tmp_path / "rt").read_text().strip() in oauth2_provider.refresh_tokens
    assert "enter the code" in said[0]
