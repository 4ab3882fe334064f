"""The case view's pure parts: invisible characters, sessions, the login limit, the proxy header,
attachments found again, and the [web] table's checks."""

from __future__ import annotations

import time
from datetime import timedelta
from email.message import EmailMessage
from hashlib import sha256

from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from mailbot.config import settings_from_mapping
from mailbot.web.access import Access, Session, hash_password
from mailbot.web.app import _safe_next
from mailbot.web.attachments import find_attachment
from mailbot.web.render import span, visible
from mailbot.web.settings import WebSettings, WebUser
from tests.unit.test_config import ENV, error_for, with_values

HASH = hash_password("a good long password")


class TwoMinutesAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 120


def access(**overrides: object) -> Access:
    values: dict[str, object] = {"users": (WebUser(name="alice", password_hash=HASH),)}
    values.update(overrides)
    return Access(WebSettings(**values), b"k" * 32)  # type: ignore[arg-type]


def test_bidirectional_overrides_and_invisible_characters_are_shown_by_name() -> None:
    assert visible("invoice\u202efdp.exe") == "invoice[U+202E]fdp.exe"
    assert visible("a\u200bb\u2066c\u2069\ufeff") == "a[U+200B]b[U+2066]c[U+2069][U+FEFF]"
    plain = "line one\n\tline two, Ünïcödé, 日本語"
    assert visible(plain) == plain


def test_durations_read_as_people_say_them() -> None:
    assert span(timedelta(days=2, hours=3, minutes=5)) == "2 d 3 h"
    assert span(timedelta(hours=-5, minutes=-10)) == "5 h 10 min"
    assert span(timedelta(seconds=59)) == "0 min"


def test_a_session_cookie_opens_only_unaltered_unexpired_and_for_a_known_user() -> None:
    a = access()
    cookie = a.seal(Session(user="alice", csrf="t"))
    assert a.open(cookie) == Session(user="alice", csrf="t")
    assert a.open(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    assert access().open(cookie) is not None  # same key, another process: still valid
    assert Access(WebSettings(users=a.settings.users), b"x" * 32).open(cookie) is None
    assert access(users=()).open(cookie) is None  # alice was removed from the config
    short = access(session_minutes=1)
    old = short.seal(Session(user="alice", csrf="t"))
    expired = URLSafeTimedSerializer(b"k" * 32, salt="mailbot.web.session",
                                     signer=TwoMinutesAgo).dumps({"u": "alice", "c": "t"})
    assert short.open(old) is not None and short.open(expired) is None


def test_the_eleventh_try_after_ten_wrong_passwords_is_refused_for_that_address_only() -> None:
    a = access()
    for n in range(10):
        assert a.login_allowed("192.0.2.1"), n
        assert not a.check_password("192.0.2.1", "alice", f"wrong {n}")
    assert not a.login_allowed("192.0.2.1")
    assert a.login_allowed("192.0.2.2")
    assert a.check_password("192.0.2.2", "alice", "a good long password")
    assert not a.check_password("192.0.2.2", "nobody", "a good long password")


def test_the_proxy_header_is_believed_only_from_a_trusted_proxy() -> None:
    a = access(trusted_header="X-Forwarded-User", trusted_proxies=("10.0.0.0/8", "::1"))
    headers = {"X-Forwarded-User": "bob"}
    assert a.proxy_user("10.1.2.3", headers) == "bob"
    assert a.proxy_user("::1", headers) == "bob"
    assert a.proxy_user("192.0.2.9", headers) is None
    assert a.proxy_user("10.1.2.3", {}) is None
    assert access().proxy_user("10.1.2.3", headers) is None  # no header configured


def test_an_attachment_is_found_by_its_recorded_digest_only() -> None:
    msg = EmailMessage()
    msg["From"] = "r@example.org"
    msg.set_content("see attached")
    msg.add_attachment(b"\x00PoC bytes\xff", maintype="application", subtype="octet-stream",
                       filename="poc.bin")
    raw = msg.as_bytes()
    assert find_attachment(raw, sha256(b"\x00PoC bytes\xff").hexdigest()) == b"\x00PoC bytes\xff"
    assert find_attachment(raw, sha256(b"other").hexdigest()) is None


def test_only_a_path_on_this_site_is_a_place_to_go_after_login() -> None:
    assert _safe_next("/cases/SEC-2026-0001") == "/cases/SEC-2026-0001"
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "", None):
        assert _safe_next(bad) == "/"


def test_the_web_table_is_checked_key_by_key() -> None:
    settings = settings_from_mapping(with_values(web={
        "listen": "[::1]:9000", "users": [{"name": "alice", "password_hash": HASH}]}),
        environ=ENV)
    assert (settings.web.host, settings.web.port, settings.web.loopback) == ("::1", 9000, True)
    assert error_for(with_values(web={"listen": "8025"})).key == "web.listen"
    assert error_for(with_values(web={"users": [{"name": "a", "password_hash": "plain"}]}
                                 )).key == "web.users"
    assert error_for(with_values(web={"trusted_header": "X-User"})).key == "web.trusted_proxies"
    assert error_for(with_values(web={"trusted_proxies": ["not an ip"]})
                     ).key == "web.trusted_proxies"
