"""Each token provider against the loopback OAuth2 server, ending in a real IMAP or SMTP login.

MSAL and google-auth run their own code: MSAL is pointed at the loopback authority (its tenant
discovery and token endpoint), google-auth at the ``token_uri`` in the service-account key file.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mailbot.errors import MailboxUnavailable, TokenUnavailable
from mailbot.mail.imap import ImapMailbox
from mailbot.mail.smtp import SmtpTransport
from mailbot.oauth2.settings import OAuth2Settings
from mailbot.oauth2.tokens import TokenCache
from mailbot.oauth2.wiring import REFUSAL_HINTS, TokenCredentials, provider_for
from tests import factories
from tests.servers.dovecot import ImapAccount
from tests.servers.oauth2 import GOOGLE_SCOPE, MICROSOFT_SCOPE, TokenAuthority
from tests.servers.smtp_sink import SinkFactory

TENANT, APP_ID, APP_SECRET = "contoso-tenant", "app-0001", "app-secret-value"
SERVICE_ACCOUNT = "mailbot@project.iam.gserviceaccount.test"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbot test app")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _login(account: ImapAccount, settings: OAuth2Settings) -> TokenCache:
    """Log in to the OAuth2 Dovecot with a token from ``settings``; the cache used."""
    cache = TokenCache(provider_for(settings))
    credentials = TokenCredentials(account.username, cache, "xoauth2",
                                   REFUSAL_HINTS[settings.provider])
    mailbox = ImapMailbox(account.mailbox_settings(auth="oauth2", oauth2=settings, password=""),
                          credentials=credentials)
    with mailbox:
        assert mailbox.folder_state("INBOX") is not None
    return cache


# -- microsoft: MSAL, client credentials ----------------------------------------------------------


def _microsoft(provider: TokenAuthority, **overrides: str) -> OAuth2Settings:
    values = {"provider": "microsoft", "authority": provider.url, "tenant_id": TENANT,
              "client_id": APP_ID, "client_secret": APP_SECRET, "scope": MICROSOFT_SCOPE,
              "ca_file": str(provider.cert.cert), **overrides}
    return OAuth2Settings(**values)  # type: ignore[arg-type]


def test_microsoft_app_with_a_client_secret_opens_the_granted_mailbox(
    oauth2_provider: TokenAuthority, oauth2_account: ImapAccount
) -> None:
    oauth2_provider.add_app(TENANT, APP_ID, secret=APP_SECRET, mailboxes=(oauth2_account.username,))
    cache = _login(oauth2_account, _microsoft(oauth2_provider))
    assert oauth2_provider.grants == ["client_credentials"]
    token = cache.token()
    assert token.expires_at is not None and token.expires_at > datetime.now(UTC)


def test_microsoft_app_with_a_certificate_signs_its_own_assertion(
    oauth2_provider: TokenAuthority, oauth2_account: ImapAccount, tmp_path: Path
) -> None:
    key = _key()
    certificate = _certificate(key)
    pem = tmp_path / "app.pem"
    pem.write_bytes(certificate + _pem(key))  # either order, as openssl tools write them
    oauth2_provider.add_app(TENANT, APP_ID, certificate_pem=certificate,
                            mailboxes=(oauth2_account.username,))
    _login(oauth2_account, _microsoft(oauth2_provider, client_secret="",
                                      certificate_file=str(pem)))
    assert oauth2_provider.grants == ["client_credentials"]


def test_microsoft_mailbox_not_granted_to_the_app_is_refused_by_the_server(
    oauth2_provider: TokenAuthority, oauth2_account: ImapAccount
) -> None:
    oauth2_provider.add_app(TENANT, APP_ID, secret=APP_SECRET,
                            mailboxes=("someone-else@example.test",))
    with pytest.raises(MailboxUnavailable) as raised:
        _login(oauth2_account, _microsoft(oauth2_provider))
    assert "AUTHENTICATIONFAILED" in str(raised.value)
    assert "grant it to oauth2.client_id" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert oauth2_provider.grants == ["client_credentials"] * 2  # refused, refreshed, refused


@pytest.mark.parametrize(("overrides", "key", "code"), [
    ({"client_secret": "wrong"}, "oauth2.client_secret_env", "AADSTS7000215"),
    ({"client_id": "app-9999"}, "oauth2.client_id", "AADSTS700016"),
    ({"tenant_id": "no-such-tenant"}, "oauth2.tenant_id", "AADSTS90002"),
])
def test_microsoft_errors_name_the_key_and_the_error_code(
    oauth2_provider: TokenAuthority, overrides: dict[str, str], key: str, code: str
) -> None:
    oauth2_provider.add_app(TENANT, APP_ID, secret=APP_SECRET, mailboxes=("x@example.test",))
    cache = TokenCache(provider_for(_microsoft(oauth2_provider, **overrides)))
    with pytest.raises(TokenUnavailable) as raised:
        cache.token()
    message = str(raised.value)
    assert raised.value.key == key
    assert f"check {key}" in message
    assert code in message
    assert "\n" not in message
    assert APP_SECRET not in message and "wrong" not in message.split("check")[0][-20:]


# -- google: google-auth, a service account with domain-wide delegation ----------------------


def _service_account_file(provider: TokenAuthority, tmp_path: Path) -> Path:
    key = _key()
    provider.add_service_account(SERVICE_ACCOUNT, key.public_key(), domains=("example.test",))
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "mailbot-test", "private_key_id": "k1",
        "private_key": _pem(key).decode(), "client_email": SERVICE_ACCOUNT,
        "client_id": "100000000000000000001", "token_uri": provider.token_url,
    }))
    return path


def _google(provider: TokenAuthority, path: Path, subject: str) -> OAuth2Settings:
    return OAuth2Settings(provider="google", service_account_file=str(path), subject=subject,
                          scope=GOOGLE_SCOPE, ca_file=str(provider.cert.cert))


def test_google_service_account_acts_as_the_mailbox(
    oauth2_provider: TokenAuthority, oauth2_account: ImapAccount, tmp_path: Path,
    smtp_sink_factory: SinkFactory,
) -> None:
    path = _service_account_file(oauth2_provider, tmp_path)
    settings = _google(oauth2_provider, path, oauth2_account.username)
    cache = _login(oauth2_account, settings)
    assert oauth2_provider.grants == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]

    sink = smtp_sink_factory(token_check=oauth2_provider.valid_for)
    transport = SmtpTransport(
        sink.smtp_settings(auth="oauth2", oauth2=settings, username=oauth2_account.username),
        credentials=TokenCredentials(oauth2_account.username, cache, "oauthbearer"))

    async def send() -> None:
        async with transport.connection() as conn:
            await conn.send("", ["rita@reporter.example"], factories.message())

    asyncio.run(send())
    assert sink.wait_for(1)[0].login == oauth2_account.username


def test_google_without_delegation_for_the_domain_names_the_key(
    oauth2_provider: TokenAuthority, tmp_path: Path
) -> None:
    path = _service_account_file(oauth2_provider, tmp_path)
    cache = TokenCache(provider_for(_google(oauth2_provider, path, "security@other.test")))
    with pytest.raises(TokenUnavailable) as raised:
        cache.token()
    assert raised.value.code == "unauthorized_client"
    assert "check oauth2.service_account_file" in str(raised.value)


# -- command: a helper prints the token ---------------------------------------------------------


def _helper(tmp_path: Path, body: str) -> tuple[str, ...]:
    script = tmp_path / "get-token.py"
    script.write_text(body)
    return (sys.executable, str(script))


def test_command_prints_a_token_that_dovecot_accepts(
    oauth2_provider: TokenAuthority, oauth2_account: ImapAccount, tmp_path: Path
) -> None:
    token = oauth2_provider.issue(oauth2_account.username)
    command = _helper(tmp_path, f"print({token!r})\n")
    _login(oauth2_account, OAuth2Settings(provider="command", token_command=command))
    assert oauth2_provider.introspections == [(oauth2_account.username, True)]


def test_a_failing_command_is_one_line_that_names_the_key(tmp_path: Path) -> None:
    command = _helper(tmp_path, "import sys\nsys.stderr.write('no cached token\\nline 2\\n')\n"
                                "sys.exit(3)\n")
    cache = TokenCache(provider_for(OAuth2Settings(provider="command", token_command=command)))
    with pytest.raises(TokenUnavailable) as raised:
        cache.token()
    assert str(raised.value).endswith("check oauth2.token_command")
    assert "status 3 (no cached token)" in str(raised.value)
