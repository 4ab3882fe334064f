"""An encrypted, signed report on the case page: the decrypted text, and what PGP said."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp

from mailbot.web.app import build_app
from mailbot.web.context import WebContext
from mailbot.web.settings import WebSettings
from tests.integration.test_pgp_flow import RITA, headers, make_flow
from tests.mailflow import Mailflow
from tests.pgpkeys import Home
from tests.pgpmail import Keys, Person, inner_text, pgp_mime, pgp_settings
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink


async def _get(app: ASGIApp, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.get(path, headers={"X-Forwarded-User": "carol"})


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink, team_home: Home,
         pgp_keys: Keys) -> Iterator[Mailflow]:
    made = make_flow(tmp_path, imap_account, smtp_sink, pgp_settings(team_home, pgp_keys))
    yield made
    made.app.close()


def test_the_case_page_shows_the_decrypted_text_and_the_signature(
        flow: Mailflow, people: dict[str, Person], pgp_keys: Keys) -> None:
    rita = people[RITA]
    secret = "The login form at /admin trusts X-Forwarded-For."
    inner = inner_text(secret + "\n", subject="Auth bypass in admin login", key=rita.public())
    armored = rita.home.encrypt(inner, to=pgp_keys.team_fpr, sign_as=rita.fpr)
    flow.deliver(pgp_mime(headers(RITA), armored), envelope_from=RITA)
    flow.run()
    [case] = flow.cases()

    web = WebSettings(trusted_header="X-Forwarded-User", trusted_proxies=("127.0.0.1",))
    ctx = WebContext.build(dataclasses.replace(flow.app.settings, web=web))
    try:
        page = asyncio.run(_get(build_app(ctx), f"/cases/{case.id}"))
    finally:
        ctx.close()
    assert page.status_code == 200
    assert secret in page.text
    assert "-----BEGIN PGP MESSAGE-----" not in page.text
    assert "encrypted, decrypted" in page.text
    assert f"signature good by {rita.fpr} (known key)" in page.text
