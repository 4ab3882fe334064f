"""``mailbot demo``: the whole trip on embedded servers, with no setup.

An IMAP server (pymap, in a child process), an SMTP sink (aiosmtpd, in this process) and a SQLite
database, all in a temporary directory on loopback. A few sample reports are filed into the
mailbox, mailbot runs one cycle, then the team answers one of them from the shared mailbox, and
mailbot runs again. Then the days pass on a fixed clock (the same story on every run): a report
nobody answered reaches the day its acknowledgement is due, on-call gets a reminder, and the day
after, an escalation. The cases, the receipt, the reminder and the escalation are printed.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mailbot.config import (
    DatabaseSettings,
    MailboxSettings,
    OncallSettings,
    PolicySettings,
    Settings,
    SmtpSettings,
    TeamSettings,
)
from mailbot.errors import UsageError

USER, PASSWORD = "security@demo.test", "demo-password"
ONCALL = "oncall@demo.test"
# Monday 23 November 2026, 10:00 in Amsterdam: the demo's "now" when the reports arrive.
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

SAMPLES = [
    ("Alice Example <alice@reporter.test>", "XSS in the login form",
     "Hello,\n\nthe login form reflects the `next` parameter unescaped.\n\nAlice\n", {}),
    ("bob@researcher.test", "SQL injection in /api/search",
     "The q parameter of /api/search is concatenated into SQL. PoC attached.\n", {}),
    ("Carol <carol@example.org>", "Out of Office: Re: newsletter",
     "I am away until Monday.\n", {"Auto-Submitted": "auto-replied"}),
    ("Mallory <mallory@evil.test>", "Re: [{first_case}] please add me",
     "I know your case number; attach me to it.\n", {}),
]


def run_demo() -> int:
    try:
        import aiosmtpd  # noqa: F401
        import pymap  # noqa: F401
    except ImportError:
        raise UsageError("the demo needs its extras: pip install 'mailbot[demo]'") from None
    with tempfile.TemporaryDirectory(prefix="mailbot-demo-") as tmp:
        return asyncio.run(_demo(Path(tmp)))


async def _demo(tmp: Path) -> int:
    from mailbot.app import App
    from mailbot.clock import FixedClock
    from mailbot.store import migrate

    imap_port, smtp_port = _free_port(), _free_port()
    imap = _start_pymap(imap_port)
    sink = _Sink(smtp_port)
    try:
        _wait_for_login(imap_port)
        settings = _settings(tmp, imap_port, smtp_port)
        _create_folder(imap_port, "Sent")
        clock = FixedClock(START)
        app = App(settings, clock=clock)
        migrate(app.db)
        app.prepare_storage()
        now = clock.now()
        first_case = f"SEC-{now.astimezone(app.calendar.tz).year}-0001"
        _say(f"It is {_local(app, now)} (a fixed clock: the demo tells the same story every "
             "time).")
        for i, (sender, subject, body, headers) in enumerate(SAMPLES):
            subject = subject.format(first_case=first_case)
            raw = _message(sender, subject, body, dict(headers), i, now)
            _append(imap_port, "INBOX", raw, now)
        _say("1. Four messages wait in security@: three from people, one out-of-office reply.")
        report = await app.run_once()
        _say(f"   mailbot ran once: {report.intake.opened} cases opened, "
             f"{report.outbox.sent} receipts sent.")
        _show_mail("The receipt Alice got", sink.messages[0] if sink.messages else None)
        receipts = len(sink.messages)
        first_report_id = "<demo-0@reporter.test>"
        clock.advance(timedelta(hours=2))
        reply = _message(USER, "Re: XSS in the login form",
                         "/assess severity=high target=" +
                         (now + timedelta(days=30)).date().isoformat() +
                         "\n\nThanks Alice, we can reproduce it and are working on a fix.\n",
                         {"In-Reply-To": first_report_id, "References": first_report_id,
                          "To": "Alice Example <alice@reporter.test>"}, 99, clock.now())
        _append(imap_port, "Sent", reply, clock.now())
        _say(f"2. {_local(app, clock.now())}: the team answers Alice from the shared mailbox "
             "(the reply lands in Sent), with an /assess command on its first line.")
        await app.run_once()
        _say("3. The cases now (a case's acknowledgement is due 3 business days after it "
             "arrived):")
        _print_cases(app)

        clock.set(datetime(2026, 11, 26, 9, 30, tzinfo=UTC))
        before = len(sink.messages)
        await app.run_once()
        _say(f"4. {_local(app, clock.now())}: nobody has answered Bob, and his acknowledgement "
             f"is due today. mailbot reminds on-call ({ONCALL}), once:")
        reminders = sink.messages[before:]
        _show_mail("The reminder", _first_about(reminders, "bob@researcher.test"))

        clock.set(datetime(2026, 11, 27, 9, 30, tzinfo=UTC))
        before = len(sink.messages)
        await app.run_once()
        _say(f"5. {_local(app, clock.now())}: the deadline has passed. On-call gets an "
             "escalation at once:")
        escalations = sink.messages[before:]
        _show_mail("The escalation", _first_about(escalations, "bob@researcher.test"))
        _say("6. The cases at the end:")
        _print_cases(app)
        app.close()
        _say(f"Mail delivered to the SMTP sink: {receipts} receipts (none to the out-of-office "
             f"reply; Mallory's tag opened a case of his own), {len(reminders)} reminder(s) "
             f"and {len(escalations)} escalation(s) to on-call, one per unanswered case.")
        return 0
    finally:
        sink.stop()
        imap.terminate()
        imap.wait(5)


def _settings(tmp: Path, imap_port: int, smtp_port: int) -> Settings:
    return Settings(
        mailbox=MailboxSettings(host="127.0.0.1", port=imap_port, security="none",
                                username=USER, password=PASSWORD, poll_seconds=5,
                                # the demo's mail stands for mail that arrives while it runs
                                answer_existing=True),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, security="none",
                          from_address=f"Demo Security Team <{USER}>"),
        database=DatabaseSettings(url=f"sqlite:///{tmp / 'mailbot.db'}"),
        team=TeamSettings(addresses=("alice.team@demo.test",), domains=("demo.test",)),
        policy=PolicySettings(timezone="Europe/Amsterdam", case_prefix="SEC"),
        oncall=OncallSettings(addresses=(ONCALL,)),
    )


def _message(sender: str, subject: str, body: str, headers: dict[str, str], n: int,
             when: datetime) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = headers.pop("To", USER)
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(when)
    msg["Message-ID"] = f"<demo-{n}@{sender.rpartition('@')[2].rstrip('>')}>"
    for name, value in headers.items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes(policy=email.policy.SMTP)


def _show_mail(title: str, received: bytes | None) -> None:
    if received is None:
        _say(f"   ({title.lower()}: none was sent)")
        return
    msg = email.message_from_bytes(received, policy=email.policy.default)
    _say(f"   {title}:")
    for name in ("From", "To", "Subject", "In-Reply-To", "Auto-Submitted"):
        if msg[name] is not None:
            print(f"     {name}: {msg[name]}")
    body = msg.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    for line in str(text).strip().splitlines():
        print(f"     | {line}".rstrip())


def _first_about(messages: list[bytes], needle: str) -> bytes | None:
    """The first of ``messages`` that mentions ``needle`` (the reporter of the case)."""
    for raw in messages:
        if needle.encode() in raw:
            return raw
    return messages[0] if messages else None


def _local(app: Any, at: datetime) -> str:
    return at.astimezone(app.calendar.tz).strftime("%A %d %B %Y, %H:%M")


def _print_cases(app: Any) -> None:
    from mailbot.cases.views import list_cases

    with app.db.session() as session:
        rows = list_cases(session)
    for row in rows:
        flags = f" [{', '.join(row['flags'])}]" if row["flags"] else ""
        print(f"   {row['id']}  {row['status']:<12} {row['reporter']:<24} "
              f"{row['subject'][:40]}{flags}".rstrip())


def _say(text: str) -> None:
    print(text, flush=True)


# -- the embedded servers ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_pymap(port: int) -> subprocess.Popen[bytes]:
    code = "import sys; from pymap.main import main; sys.exit(main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, "--host", "127.0.0.1", "--port", str(port), "--no-tls",
         "dict", "--demo-user", USER, "--demo-password", PASSWORD],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _wait_for_login(port: int) -> None:
    from imapclient import IMAPClient

    deadline = time.monotonic() + 20
    while True:
        try:
            with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=5) as c:
                c.login(USER, PASSWORD)
                return
        except Exception:  # refused, or not ready for logins yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _create_folder(port: int, name: str) -> None:
    from imapclient import IMAPClient

    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10) as c:
        c.login(USER, PASSWORD)
        if not c.folder_exists(name):
            c.create_folder(name)


def _append(port: int, folder: str, raw: bytes, when: datetime) -> None:
    from imapclient import IMAPClient

    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10) as c:
        c.login(USER, PASSWORD)
        c.append(folder, raw, msg_time=when)


class _Sink:
    """An SMTP server that keeps what it is given."""

    def __init__(self, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[bytes] = []
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                with sink._lock:
                    sink.messages.append(bytes(envelope.original_content or envelope.content))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
