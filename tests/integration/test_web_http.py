"""The case view over plain HTTP: the login gate, sessions, headers, downloads, the audit trail."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select
from starlette.routing import Mount, Route

from mailbot.cases.models import AccessLog, Message
from mailbot.config import load_settings
from tests.servers.dovecot import ImapTestServer
from tests.website import PASSWORD, SESSION_KEY, USER, Site, build_site, start_web, write_config

pytest.importorskip("starlette")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, dovecot_server: ImapTestServer,
         ) -> Iterator[Site]:
    yield from build_site(tmp_path_factory.mktemp("web"), dovecot_server)


def login(site: Site, name: str = USER, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=site.web.url, timeout=10)
    form = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf, form
    r = client.post("/login", data={"name": name, "password": password, "csrf": csrf[1],
                                    "next": "/"})
    assert r.status_code == 303, r.text
    return client


def session_cookie(client: httpx.Client) -> str:
    return client.cookies["mailbot"]


def route_paths(site: Site) -> list[tuple[str, str]]:
    """Every route of the app, with its parameters filled in from the site's data."""
    from mailbot.web.app import build_app
    from mailbot.web.context import WebContext

    settings = load_settings(site.config, environ={
        "MAILBOT_TEST_IMAP_PASSWORD": "x", "MAILBOT_TEST_SESSION_KEY": SESSION_KEY})
    ctx = WebContext.build(settings)
    try:
        routes = build_app(ctx).routes
    finally:
        ctx.close()
    case_id = site.cases["hostile"]
    [with_attachment] = [m for m in site.flow.inbound(case_id) if m.details["attachments"]]
    values = {"case_id": case_id, "message": str(with_attachment.id), "number": "0"}
    out = []
    for route in routes:
        if isinstance(route, Mount):
            out.append(("GET", route.path + "/style.css"))
            continue
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m[1]], route.path)
        out += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return out


PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/static/style.css"),
          ("POST", "/csp-report")}


def test_every_route_but_the_login_refuses_a_stranger(site: Site) -> None:
    routes = route_paths(site)
    assert ("GET", f"/cases/{site.cases['hostile']}") in routes
    closed = [r for r in routes if r not in PUBLIC]
    assert len(closed) >= 5
    with httpx.Client(base_url=site.web.url, timeout=10) as stranger:
        for method, path in closed:
            page = stranger.request(method, path, headers={"accept": "text/html"})
            if method == "GET":  # a browser asking for a page is sent to the login form
                assert page.status_code == 303, (method, path, page.status_code)
                assert page.headers["location"].startswith("/login")
            else:
                assert page.status_code == 401, (method, path, page.status_code)
            api = stranger.request(method, path)
            assert api.status_code == 401, (method, path, api.status_code)
            assert site.cases["hostile"] not in api.text and "Rita" not in page.text


def test_a_forged_or_expired_session_cookie_is_refused(site: Site) -> None:
    client = login(site)
    good = session_cookie(client)
    payload, _, signature = good.rpartition(".")
    tampered = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    other_key = URLSafeTimedSerializer(b"another key", salt="mailbot.web.session").dumps(
        {"u": USER, "c": "x"})

    expired_signer = URLSafeTimedSerializer(SESSION_KEY.encode(), salt="mailbot.web.session")
    signer = expired_signer.make_signer()
    signer.get_timestamp = lambda: int(time.time()) - 9 * 3600  # type: ignore[attr-defined]
    expired = signer.sign(expired_signer.dump_payload({"u": USER, "c": "x"})).decode()
    def board_with(cookie: str) -> int:
        with httpx.Client(base_url=site.web.url, timeout=10, cookies={"mailbot": cookie}) as c:
            return c.get("/").status_code

    assert board_with(good) == 200  # the control
    for forged in (tampered, other_key, expired, "", "garbage"):
        assert board_with(forged) == 401, forged


def test_every_response_carries_the_security_headers(site: Site) -> None:
    client = login(site)
    for path in ("/", f"/cases/{site.cases['fresh']}", "/report", "/cases/NOPE-2026-0001",
                 "/static/style.css"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src" not in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    login_page = httpx.get(site.web.url + "/login")
    assert "frame-ancestors 'none'" in login_page.headers["content-security-policy"]
    cookie = login_page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie


def test_an_attachment_downloads_only_as_an_opaque_file(site: Site) -> None:
    client = login(site)
    case_id = site.cases["hostile"]
    [m] = [m for m in site.flow.inbound(case_id) if m.details["attachments"]]
    r = client.get(f"/cases/{case_id}/messages/{m.id}/attachments/0")
    assert r.status_code == 200
    assert r.content == b"<script>alert(7)</script>"
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == f'attachment; filename="{case_id}-{m.id}-1.bin"'
    # Another case's message cannot be reached through this case's path.
    other = site.cases["fresh"]
    assert client.get(f"/cases/{other}/messages/{m.id}/attachments/0").status_code == 404


def test_logins_and_case_views_are_written_to_the_audit_trail(site: Site) -> None:
    client = login(site)
    case_id = site.cases["overdue"]
    assert client.get(f"/cases/{case_id}").status_code == 200
    bad = httpx.Client(base_url=site.web.url, timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', bad.get("/login").text)
    assert csrf
    bad.post("/login", data={"name": "mallory", "password": "guess", "csrf": csrf[1]})
    with site.flow.app.db.session() as s:
        rows = list(s.scalars(select(AccessLog).order_by(AccessLog.id)))
    seen = [(r.actor, r.action, r.case_id) for r in rows]
    assert (USER, "login", None) in seen
    assert (USER, "case-view", case_id) in seen
    assert ("mallory", "login-failed", None) in seen
    assert all(r.address == "127.0.0.1" for r in rows)


def test_a_login_form_posted_from_elsewhere_is_refused(site: Site) -> None:
    client = httpx.Client(base_url=site.web.url, timeout=10)
    client.get("/login")
    r = client.post("/login", data={"name": USER, "password": PASSWORD, "csrf": "made-up"})
    assert r.status_code == 400
    assert client.get("/").status_code == 401


def test_the_eleventh_wrong_password_in_a_minute_is_refused(
        site: Site, tmp_path: Path) -> None:
    # A server of its own: the limit is per address, and every test here comes from 127.0.0.1.
    web = start_web(site.config, site.account, tmp_path / "web.log")
    try:
        client = httpx.Client(base_url=web.url, timeout=10)
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert csrf
        statuses = [client.post("/login", data={"name": USER, "password": f"wrong {i}",
                                                "csrf": csrf[1]}).status_code
                    for i in range(10)]
        assert statuses == [401] * 10
        # The 11th try is refused before its password is looked at, even the right one.
        r = client.post("/login", data={"name": USER, "password": PASSWORD, "csrf": csrf[1]})
        assert r.status_code == 429 and "Wait a minute" in r.text
        assert client.get("/").status_code == 401
    finally:
        web.stop()


def test_a_trusted_proxy_header_logs_in_and_an_untrusted_one_does_not(
        site: Site, tmp_path: Path) -> None:
    for proxies, expected in (('["127.0.0.1"]', 200), ('["10.9.9.9"]', 401)):
        config = write_config(tmp_path / "proxy.toml", site.account, site.flow.sink,
                              site.flow.app.settings.database.url,
                              key_file=site.flow.app.settings.storage.key_file,
                              trusted_header='"X-Forwarded-User"', trusted_proxies=proxies)
        web = start_web(config, site.account, tmp_path / "proxy.log")
        try:
            r = httpx.get(web.url + "/", headers={"X-Forwarded-User": "bob@example.test"})
            assert r.status_code == expected, proxies
            if expected == 200:
                assert "bob@example.test" in r.text
        finally:
            web.stop()


def test_the_case_page_shows_the_thread_as_escaped_text(site: Site) -> None:
    client = login(site)
    page = client.get(f"/cases/{site.cases['hostile']}").text
    assert "&lt;script&gt;alert(&#39;body&#39;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "[U+202E]txt.exe" in page and "\u202e" not in page
    assert not re.search(r"<a[^>]+href=\"javascript:", page)
    fresh = client.get(f"/cases/{site.cases['fresh']}").text
    assert "Thanks Rita, we can reproduce it." in fresh
    with site.flow.app.db.session() as s:
        kinds = set(s.scalars(select(Message.kind).where(
            Message.case_id == site.cases["fresh"])))
    assert {"report", "receipt", "team"} <= kinds


def test_the_report_page_shows_the_sla_report_figures(site: Site) -> None:
    from mailbot.report.service import build_figures, last_months

    app = site.flow.app
    now = app.clock.now()
    figures = build_figures(app.db, app.calendar, app.settings.policy,
                            last_months(app.calendar.local_date(now)), now)
    page = login(site).get("/report").text
    received = re.search(r"<b>(\d+)</b> received", page)
    assert received and int(received[1]) == figures.totals.received == len(site.cases)
    breached = {b.case for b in figures.totals.breaches}
    assert {site.cases["older"], site.cases["overdue"]} <= breached
    for case_id in breached:
        assert f'<a href="/cases/{case_id}">' in page


def board_ids(client: httpx.Client, query: str) -> set[str]:
    return set(re.findall(r'data-case="([^"]+)"', client.get("/?" + query).text))


def test_the_board_filters_by_status_and_finds_by_id_reporter_or_cve(site: Site) -> None:
    client = login(site)
    cases = site.cases
    subprocess.run([sys.executable, "-m", "mailbot", "--config", str(site.config), "cases",
                    "cve", cases["recent"], "CVE-2026-31337"], check=True, capture_output=True)
    assert board_ids(client, "") == set(cases.values())
    assert board_ids(client, "status=acknowledged") == {cases["fresh"]}
    assert board_ids(client, "status=closed") == set()
    assert board_ids(client, "q=" + cases["older"].lower()) == {cases["older"]}
    assert board_ids(client, "q=rita%2Boverdue") == {cases["overdue"]}
    assert board_ids(client, "q=mallory") == {cases["hostile"]}
    assert board_ids(client, "q=cve-2026-31337") == {cases["recent"]}
    assert board_ids(client, "severity=high") == set()
    assert board_ids(client, "q=%25") == set()  # a LIKE wildcard is just a character
