"""A throwaway IMAP server for the tests: Dovecot when installed, pymap as the fallback.

Fixtures:

- ``dovecot_server`` (session): a running server with IMAP and LMTP on 127.0.0.1 and, for
  Dovecot, an implicit-TLS listener plus STARTTLS with a self-signed certificate.
- ``imap_account`` (function): a fresh account on that server, so tests never see each other's
  mail.
- ``pymap_server`` (session): always pymap, for the tests that check the fallback itself.

Accounts are lines in a passwd-file. Dovecot re-reads it when it changes, but looks at most once a
second, so accounts are written ahead in batches and handed out one per test. pymap knows a single
user per process, so there each account is its own process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import re
import secrets
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
from imapclient import IMAPClient

from mailbot.config import MailboxSettings
from tests.servers import free_port, server_missing

HOST = "127.0.0.1"
SENT = "Sent"
START_TIMEOUT = 15.0
_SBIN_PATH = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", os.environ.get("PATH", "")])


def dovecot_binary() -> str | None:
    return shutil.which("dovecot", path=_SBIN_PATH)


def doveadm_binary() -> str | None:
    return shutil.which("doveadm", path=_SBIN_PATH)


def pymap_binary() -> str | None:
    """pymap's console script. It is installed with the test extras next to the interpreter
    running the tests, which need not be on PATH (``.venv/bin/python -m pytest`` from a venv
    that was never activated), so that directory is searched first."""
    here = str(Path(sys.executable).parent)  # not resolved: a venv's python is a symlink
    return shutil.which("pymap", path=os.pathsep.join([here, os.environ.get("PATH", "")]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImapAccount:
    """One mailbox on a test server, with what a client needs to reach it."""

    host: str
    imap_port: int
    username: str
    password: str = dataclasses.field(repr=False)
    lmtp_port: int | None = None  # None: the server has no LMTP (pymap)
    imaps_port: int | None = None  # implicit TLS; STARTTLS is offered on imap_port then
    server: ImapTestServer = dataclasses.field(repr=False, compare=False)

    def mailbox_settings(self, **overrides: Any) -> MailboxSettings:
        """Settings for mailbot's IMAP edge; ``security="tls"`` alone also picks the TLS port."""
        if overrides.get("security") in ("tls", "starttls") and self.imaps_port is None:
            server_missing("this test server speaks no TLS; the test needs Dovecot")
        if overrides.get("security") == "tls" and "port" not in overrides:
            overrides["port"] = self.imaps_port
        base = MailboxSettings(
            host=self.host,
            port=self.imap_port,
            security="none",
            username=self.username,
            password=self.password,
            folder="INBOX",
            sent_folder=SENT,
            idle=True,
            poll_seconds=1,
            timeout_seconds=10,
            verify_tls=False,  # the test certificate is self-signed
            # Most tests deliver mail and then run mailbot for the first time: that mail is
            # answered. The tests of history import ask for the default (False) themselves.
            answer_existing=True,
        )
        return dataclasses.replace(base, **overrides)

    @contextlib.contextmanager
    def client(self) -> Iterator[IMAPClient]:
        """A plain imapclient session, logged in, for checking what the server holds."""
        with IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=10) as c:
            c.normalise_times = False
            c.login(self.username, self.password)
            yield c


class ImapTestServer(Protocol):
    name: str

    def add_user(self, name: str | None = None) -> ImapAccount: ...

    def deliver(
        self, account: ImapAccount, raw: bytes, sender: str = "reporter@example.net"
    ) -> None: ...

    def append(
        self,
        account: ImapAccount,
        folder: str,
        raw: bytes,
        internal_date: datetime | None = None,
        flags: tuple[str, ...] = (),
    ) -> int: ...

    def change_uidvalidity(self, account: ImapAccount, folder: str) -> int: ...

    def require_faults(self) -> None:
        """Skip (fail in CI) unless drop_connections/kill_sessions/change_uidvalidity work."""

    def drop_connections(self, account: ImapAccount) -> None: ...

    def kill_sessions(self, account: ImapAccount) -> int: ...

    def stop(self) -> None: ...


_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


def _imap_append(
    account: ImapAccount,
    folder: str,
    raw: bytes,
    internal_date: datetime | None,
    flags: tuple[str, ...],
) -> int:
    """APPEND as a mail client would; returns the new UID (0 if the server does not say)."""
    with account.client() as c:
        response = c.append(folder, raw, flags=flags, msg_time=internal_date)
    found = _APPENDUID.search(response or b"")
    return int(found.group(2)) if found else 0


def _stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def _wait_for_login(
    proc: subprocess.Popen[bytes], port: int, user: str, password: str, log: Path
) -> None:
    """The port accepts connections a moment before logins work, so retry LOGIN itself."""
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"IMAP test server exited with {proc.returncode}: {_tail(log)}")
        try:
            with IMAPClient(HOST, port=port, ssl=False, timeout=2) as c:
                c.login(user, password)
                return
        except Exception as exc:
            last = exc
            time.sleep(0.05)
    raise RuntimeError(f"IMAP test server did not accept LOGIN ({last}): {_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------
# Dovecot

_DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
instance_name = mailbot-test-{imap_port}
protocols = imap lmtp
listen = {host}
log_path = {d}/dovecot.log
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth2_mechanisms}
# Tests log in with wrong passwords on purpose: no failure delay, and (below, by hiding anvil's
# penalty socket from the auth process) no seconds-long penalty on every later login.
auth_failure_delay = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:{d}/mail/%u/Maildir:LAYOUT=fs
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users{passwd_mechanisms}
}}
{oauth2_passdb}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u{userdb_all}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    auto = subscribe
    special_use = \\Sent
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {host}
    port = {lmtp_port}
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
  # "* OK Still here" every second instead of every 2 minutes, so IDLE tests also prove that
  # the keepalive is not taken for news.
  imap_idle_notify_interval = 1 secs
}}
"""

# With an introspection URL, tokens are checked by an OAuth2 server the test suite runs.
_OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {d}/oauth2.conf
}}
"""
_OAUTH2_CONF = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
force_introspection = yes
"""


def _make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            f"subjectAltName=DNS:localhost,IP:{HOST}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class DovecotServer:
    """A Dovecot instance of its own in a temporary directory, stopped by its pid."""

    name = "dovecot"

    def __init__(self, *, tls: bool = True, oauth2_introspection_url: str | None = None) -> None:
        binary, doveadm = dovecot_binary(), doveadm_binary()
        if binary is None or doveadm is None:
            raise FileNotFoundError("dovecot")
        self.binary, self.doveadm_path = binary, doveadm
        self.tls = tls
        self.oauth2_introspection_url = oauth2_introspection_url
        # Not under pytest's basetemp: that is 0700, and Dovecot's unprivileged processes must
        # traverse to their mail and sockets.
        self.dir = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-"))
        self.dir.chmod(0o711)
        self.users_file = self.dir / "users"
        self.config_file = self.dir / "dovecot.conf"
        self.log_file = self.dir / "dovecot.log"
        self.cert_file: Path | None = None
        self._lines: list[str] = []
        self._counter = itertools.count(1)
        self._spare: list[tuple[str, str]] = []  # accounts written ahead, not yet handed out
        self._proc: subprocess.Popen[bytes] | None = None
        self.imap_port = self.imaps_port = self.lmtp_port = 0

    def start(self) -> DovecotServer:
        mail = self.dir / "mail"
        mail.mkdir()
        ssl_files = ""
        if self.tls:
            self.cert_file, key = _make_certificate(self.dir)
            ssl_files = f"ssl_cert = <{self.cert_file}\nssl_key = <{key}"
        probe_password = secrets.token_hex(8)
        self._write_users([f"probe@example.test:{{PLAIN}}{probe_password}"])
        self._write_ahead()
        ids = self._identities()
        oauth2 = {"oauth2_mechanisms": "", "passwd_mechanisms": "", "oauth2_passdb": "",
                  "userdb_all": ""}
        if self.oauth2_introspection_url:
            (self.dir / "oauth2.conf").write_text(
                _OAUTH2_CONF.format(url=self.oauth2_introspection_url))
            oauth2 = {
                "oauth2_mechanisms": " xoauth2 oauthbearer",
                "passwd_mechanisms": "\n  mechanisms = plain login",
                "oauth2_passdb": _OAUTH2_PASSDB.format(d=self.dir),
                # LMTP's user lookups cannot ask a passdb that only knows tokens.
                "userdb_all": " allow_all_users=yes",
            }
        if os.geteuid() == 0:
            os.chown(mail, int(ids["uid"]), int(ids["gid"]))
        for attempt in range(3):  # a free port may be taken by someone else before we bind it
            self.imap_port, self.imaps_port, self.lmtp_port = free_port(), free_port(), free_port()
            self.config_file.write_text(
                _DOVECOT_CONF.format(
                    d=self.dir,
                    host=HOST,
                    imap_port=self.imap_port,
                    imaps_port=self.imaps_port if self.tls else 0,
                    lmtp_port=self.lmtp_port,
                    ssl="yes" if self.tls else "no",
                    ssl_files=ssl_files,
                    **oauth2,
                    **ids,
                )
            )
            log = open(self.dir / "stderr.log", "ab")  # noqa: SIM115 - lives as long as the server
            self._proc = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.config_file)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            try:
                _wait_for_login(
                    self._proc, self.imap_port, "probe@example.test", probe_password, self.log_file
                )
                return self
            except RuntimeError:
                _stop_process(self._proc)
                if attempt == 2:
                    raise
        return self

    @staticmethod
    def _identities() -> dict[str, str]:
        if os.geteuid() == 0:
            return {
                "login_user": "dovenull",
                "internal_user": "dovecot",
                "internal_group": "dovecot",
                "uid": "65534",
                "gid": "65534",
            }
        import grp
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        return {
            "login_user": user,
            "internal_user": user,
            "internal_group": group,
            "uid": str(os.getuid()),
            "gid": str(os.getgid()),
        }

    def _write_users(self, lines: list[str]) -> None:
        # Written aside and renamed so Dovecot never reads half a file.
        self._lines.extend(lines)
        tmp = self.users_file.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in self._lines))
        tmp.chmod(0o644)
        tmp.replace(self.users_file)

    def _write_ahead(self, count: int = 50) -> list[tuple[str, str]]:
        made = [
            (f"security-{next(self._counter)}@example.test", secrets.token_hex(12))
            for _ in range(count)
        ]
        self._write_users([f"{user}:{{PLAIN}}{password}" for user, password in made])
        self._spare.extend(made)
        return made

    def _wait_until_known(self, username: str, password: str) -> None:
        assert self._proc is not None
        _wait_for_login(self._proc, self.imap_port, username, password, self.log_file)

    def add_user(self, name: str | None = None) -> ImapAccount:
        if name is not None:
            username, password = name, secrets.token_hex(12)
            self._write_users([f"{username}:{{PLAIN}}{password}"])
            self._wait_until_known(username, password)
        else:
            if not self._spare:
                self._wait_until_known(*self._write_ahead()[-1])
            username, password = self._spare.pop(0)
        return ImapAccount(
            host=HOST,
            imap_port=self.imap_port,
            username=username,
            password=password,
            lmtp_port=self.lmtp_port,
            imaps_port=self.imaps_port if self.tls else None,
            server=self,
        )

    def deliver(
        self, account: ImapAccount, raw: bytes, sender: str = "reporter@example.net"
    ) -> None:
        """Deliver the way an MTA does: LMTP (Dovecot adds Return-Path and Delivered-To)."""
        with smtplib.LMTP(HOST, self.lmtp_port, timeout=10) as lmtp:
            refused = lmtp.sendmail(sender, [account.username], raw)
        if refused:
            raise RuntimeError(f"LMTP refused {refused}")

    def append(
        self,
        account: ImapAccount,
        folder: str,
        raw: bytes,
        internal_date: datetime | None = None,
        flags: tuple[str, ...] = (),
    ) -> int:
        """File a message as a client would (a Sent copy); the bytes are stored as given."""
        return _imap_append(account, folder, raw, internal_date, flags)

    def doveadm(self, *args: str) -> str:
        done = subprocess.run(
            [self.doveadm_path, "-c", str(self.config_file), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def change_uidvalidity(self, account: ImapAccount, folder: str) -> int:
        """Give ``folder`` a new UIDVALIDITY, as a restored or rebuilt mailbox would have."""
        with account.client() as c:
            old = int(c.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])
        new = old + 1000
        self.doveadm(
            "mailbox", "update", "-u", account.username, "--uid-validity", str(new), folder
        )
        return new

    def require_faults(self) -> None:
        pass  # doveadm can do them all

    def drop_connections(self, account: ImapAccount) -> None:
        """Disconnect every IMAP session of the account (``doveadm kick``), and wait till gone."""
        self.doveadm("kick", account.username)
        self._wait_until_no_sessions(account)

    def _sessions(self, account: ImapAccount) -> list[int]:
        pids = []
        for line in self.doveadm("who", "-1", account.username).splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[0] == account.username and fields[1] == "imap":
                pids.append(int(fields[2]))
        return pids

    def _wait_until_no_sessions(self, account: ImapAccount) -> None:
        # The kick is a signal to each imap process; its BYE goes out a moment later.
        deadline = time.monotonic() + 5
        while self._sessions(account) and time.monotonic() < deadline:
            time.sleep(0.02)

    def kill_sessions(self, account: ImapAccount) -> int:
        """SIGKILL the account's IMAP processes: the connection ends with no BYE, as in a crash."""
        killed = 0
        for pid in self._sessions(account):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        self._wait_until_no_sessions(account)
        return killed

    def stop(self) -> None:
        if self._proc is not None:
            _stop_process(self._proc)
            self._proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# pymap


class PymapServer:
    """pymap's in-memory backend: one process per account, since it knows one user only.

    No LMTP (``deliver`` appends), no TLS, no way to change UIDVALIDITY or kick a session; UIDs
    start at 101 and nothing survives a restart.
    """

    name = "pymap"

    def __init__(self) -> None:
        binary = pymap_binary()
        if binary is None:
            raise FileNotFoundError("pymap")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="mailbot-pymap-"))
        self._counter = itertools.count(1)
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> PymapServer:
        return self

    def add_user(self, name: str | None = None) -> ImapAccount:
        n = next(self._counter)
        username = name or f"security-{n}@example.test"
        password = secrets.token_hex(12)
        for attempt in range(3):
            port = free_port()
            log_path = self.dir / f"pymap-{n}.log"
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    [
                        self.binary,
                        "--host",
                        HOST,
                        "--port",
                        str(port),
                        "--no-tls",
                        "dict",
                        "--demo-user",
                        username,
                        "--demo-password",
                        password,
                    ],
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                )
            self._procs.append(proc)
            try:
                _wait_for_login(proc, port, username, password, log_path)
                break
            except RuntimeError:
                _stop_process(proc)
                if attempt == 2:
                    raise
        account = ImapAccount(
            host=HOST, imap_port=port, username=username, password=password, server=self
        )
        with account.client() as c:
            c.create_folder(SENT)  # pymap starts with INBOX only
        return account

    def deliver(
        self, account: ImapAccount, raw: bytes, sender: str = "reporter@example.net"
    ) -> None:
        """pymap has no LMTP: an APPEND to INBOX stands in for delivery."""
        _imap_append(account, "INBOX", raw, None, ())

    def append(
        self,
        account: ImapAccount,
        folder: str,
        raw: bytes,
        internal_date: datetime | None = None,
        flags: tuple[str, ...] = (),
    ) -> int:
        return _imap_append(account, folder, raw, internal_date, flags)

    def require_faults(self) -> None:
        server_missing("pymap cannot kick sessions or change UIDVALIDITY; the test needs Dovecot")

    def change_uidvalidity(self, account: ImapAccount, folder: str) -> int:
        server_missing("pymap cannot change a folder's UIDVALIDITY; this test needs Dovecot")

    def drop_connections(self, account: ImapAccount) -> None:
        server_missing("pymap cannot kick a session; this test needs Dovecot")

    def kill_sessions(self, account: ImapAccount) -> int:
        server_missing("pymap runs every session in one process; this test needs Dovecot")

    def stop(self) -> None:
        for proc in self._procs:
            _stop_process(proc)
        self._procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[ImapTestServer]:
    """Dovecot if installed, else pymap, else a skip (a failure in CI).

    ``MAILBOT_TEST_IMAP=pymap`` picks pymap even where Dovecot is installed.
    """
    server: DovecotServer | PymapServer
    forced = os.environ.get("MAILBOT_TEST_IMAP", "")
    if forced == "pymap":
        if pymap_binary() is None:
            server_missing("MAILBOT_TEST_IMAP=pymap but pymap is not installed")
        server = PymapServer()
    elif dovecot_binary() and doveadm_binary():
        server = DovecotServer()
    elif pymap_binary():
        server = PymapServer()
    else:
        server_missing("neither dovecot (apt install dovecot-imapd dovecot-lmtpd) nor pymap found")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pymap_server() -> Iterator[PymapServer]:
    if pymap_binary() is None:
        server_missing("pymap is not installed (pip install pymap)")
    server = PymapServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def imap_account(dovecot_server: ImapTestServer) -> ImapAccount:
    """A fresh, empty account (INBOX and Sent) on the session's IMAP server."""
    return dovecot_server.add_user()
