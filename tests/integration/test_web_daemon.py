"""``mailbot run --web``: the daemon and the case view in one process, on one database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mailbot.store import Database, migrate
from tests import factories
from tests.servers import free_port
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink
from tests.website import PASSWORD, SESSION_KEY, USER, write_config


def test_run_with_web_serves_the_cases_the_daemon_opens(
        tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> None:
    db_url = f"sqlite:///{tmp_path / 'mailbot.db'}"
    migrate(Database(db_url))
    port = free_port()
    config = write_config(tmp_path / "mailbot.toml", imap_account, smtp_sink, db_url,
                          listen=f'"127.0.0.1:{port}"')
    env = {**os.environ, "MAILBOT_TEST_IMAP_PASSWORD": imap_account.password,
           "MAILBOT_TEST_SESSION_KEY": SESSION_KEY}
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "mailbot", "--config", str(config),
                                   "run", "--web"], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        client = httpx.Client(base_url=url, timeout=10)
        deadline = time.monotonic() + 30
        form = ""
        while time.monotonic() < deadline and not form:
            try:
                form = client.get("/login").text
            except httpx.TransportError:
                time.sleep(0.2)
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf, log.read_text()
        assert client.post("/login", data={"name": USER, "password": PASSWORD,
                                           "csrf": csrf[1]}).status_code == 303
        assert imap_account.server is not None
        imap_account.server.deliver(imap_account, factories.message(
            subject="RCE in the upload handler"), sender="rita@reporter.example")
        board = ""
        while time.monotonic() < deadline + 30 and "RCE in the upload handler" not in board:
            board = client.get("/").text
            time.sleep(0.2)
        assert "RCE in the upload handler" in board, log.read_text()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, log.read_text()
        assert "Traceback" not in log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
