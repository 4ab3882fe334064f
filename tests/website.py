"""A case view to test against: a database built through the real pipeline (Dovecot, intake,
the SMTP sink), and ``mailbot web`` serving it from a process of its own on loopback.

The hostile report carries markup, script, ``javascript:`` links and bidirectional overrides in
its subject, body, display name and attachment name; its resources point at a canary HTTP
server on loopback (another origin), which counts every request it gets.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import httpx

from mailbot.web.access import hash_password
from tests import factories
from tests.mailflow import Mailflow, team_reply
from tests.servers import free_port
from tests.servers.dovecot import ImapAccount, ImapTestServer
from tests.servers.smtp_sink import SmtpSink

USER, PASSWORD = "alice", "correct horse battery staple"
SESSION_KEY = "test-session-key-0123456789abcdef"
RLO = "\u202e"


class Canary:
    """An HTTP server on another loopback port: any request to it is a leak."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hostile_report(canary: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f'"<img src={canary}/name onerror=alert(1)> {RLO}evil" <mallory@evil.example>'
    msg["To"] = "security@example.test"
    msg["Subject"] = (f"<script>alert('subject')</script><img src={canary}/subject "
                      f"onerror=alert(2)> invoice{RLO}fdp.exe")
    msg["Message-ID"] = "<hostile-1@evil.example>"
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    msg.set_content(
        "<script>alert('body')</script>\n"
        f'<a href="javascript:alert(3)">click me</a> javascript:alert(4)\n'
        f'<img src="{canary}/body" onerror="alert(5)">\n'
        f"<iframe src=\"{canary}/frame\"></iframe> {RLO}txt.exe\n")
    msg.add_alternative(
        f'<html><body><p>html part</p><img src="{canary}/html"><script>alert(6)</script>'
        "</body></html>", subtype="html")
    msg.add_attachment(b"<script>alert(7)</script>", maintype="text", subtype="html",
                       filename=f"<img src={canary}/attachment onerror=alert(8)>{RLO}gpj.exe")
    return msg.as_bytes(policy=SMTP)


def write_config(path: Path, account: ImapAccount, sink: SmtpSink, db_url: str,
                 key_file: str | None = None, **web: str) -> Path:
    extra = "".join(f"{k} = {v}\n" for k, v in web.items())
    path.write_text(f"""
[mailbox]
host = "127.0.0.1"
port = {account.imap_port}
security = "none"
username = "{account.username}"
password_env = "MAILBOT_TEST_IMAP_PASSWORD"

[smtp]
host = "127.0.0.1"
port = {sink.port}
security = "none"
from = "Security <security@example.test>"

[database]
url = "{db_url}"

[storage]
key_file = "{key_file or factories.storage_key(path.parent)}"

[policy]
timezone = "Europe/Amsterdam"

[web]
users = [{{name = "{USER}", password_hash = "{hash_password(PASSWORD)}"}}]
session_key_env = "MAILBOT_TEST_SESSION_KEY"
{extra}""")
    return path


@dataclass
class WebServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text("utf-8", "replace")


def start_web(config: Path, account: ImapAccount, log: Path) -> WebServer:
    port = free_port()
    env = {**os.environ, "MAILBOT_TEST_IMAP_PASSWORD": account.password,
           "MAILBOT_TEST_SESSION_KEY": SESSION_KEY}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "web", "--listen",
             f"127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT, env=env)
    server = WebServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mailbot web exited: {server.log_text()}")
        try:
            httpx.get(server.url + "/login", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"mailbot web did not answer: {server.log_text()}")


@dataclass
class Site:
    """The case view of a small, real database: which case is which."""

    web: WebServer
    flow: Mailflow
    canary: Canary
    config: Path
    account: ImapAccount
    cases: dict[str, str] = field(default_factory=dict)  # role -> case id


def build_site(tmp: Path, imap: ImapTestServer) -> Iterator[Site]:
    account = imap.add_user()
    sink = SmtpSink()
    sink.start()
    canary = Canary()
    settings = factories.settings(tmp, account.mailbox_settings(), sink.smtp_settings())
    app = factories.app(settings)
    flow = Mailflow(app, account, sink)
    now = datetime.now(UTC)
    try:
        # Reports that reached the mailbox earlier keep their arrival time (INTERNALDATE), so
        # their deadlines differ: a week old is overdue, one from today is not.
        roles: dict[str, str] = {}
        for role, age, subject in (("overdue", timedelta(days=8), "SQL injection in search"),
                                   ("older", timedelta(days=12), "Open redirect in /go"),
                                   ("recent", timedelta(days=4), "CSRF on the settings page"),
                                   ("fresh", timedelta(0), "XSS in the login form")):
            before = {c.id for c in flow.cases()}
            raw = factories.message(subject=subject, date=now - age,
                                    sender=f"Rita Reporter <rita+{role}@reporter.example>")
            imap.append(account, "INBOX", raw, internal_date=now - age)
            flow.run()
            [case] = [c for c in flow.cases() if c.id not in before]
            roles[role] = case.id
        receipt = flow.receipt_id(roles["fresh"])
        flow.deliver(team_reply(answering=receipt, to="rita+fresh@reporter.example",
                                body="Thanks Rita, we can reproduce it.\n"))
        before = {c.id for c in flow.cases()}
        flow.deliver(hostile_report(canary.url), envelope_from="mallory@evil.example")
        flow.run()
        [hostile] = [c for c in flow.cases() if c.id not in before]
        roles["hostile"] = hostile.id
        config = write_config(tmp / "mailbot.toml", account, sink, settings.database.url)
        web = start_web(config, account, tmp / "web.log")
        try:
            yield Site(web=web, flow=flow, canary=canary, config=config, account=account,
                       cases=roles)
        finally:
            web.stop()
    finally:
        app.close()
        canary.stop()
        sink.stop()
