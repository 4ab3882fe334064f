"""A throwaway PostgreSQL cluster for the tests: ``initdb`` and ``pg_ctl`` as the postgres user.

Fixtures:

- ``postgres_server`` (session): one cluster on 127.0.0.1 and a free port, fsync off, in a
  temporary directory, stopped (``pg_ctl stop -m fast``) and removed when the session ends.
- ``pg_url`` (function): a fresh, empty database on it for each test, as a SQLAlchemy URL
  ``postgresql+psycopg://postgres@127.0.0.1:PORT/NAME``; dropped after the test.
- ``private_postgres`` (function): a cluster of the test's own, which it may stop and resume.

Without PostgreSQL binaries (``/usr/lib/postgresql/*/bin`` or ``initdb`` on PATH) the tests that
use them are skipped, or fail under ``MAILBOT_TEST_REQUIRE_SERVERS=1``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port, server_missing

HOST = "127.0.0.1"
SUPERUSER = "postgres"
START_TIMEOUT_SECONDS = 30


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin``, else the folder of ``initdb`` on PATH."""
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        version = re.match(r"\d+", path.parent.name)
        if version and (path / "initdb").exists() and (path / "pg_ctl").exists():
            candidates.append((int(version.group()), path))
    if candidates:
        return max(candidates)[1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclasses.dataclass
class PostgresServer:
    bin_dir: Path
    directory: Path
    port: int
    run_as: str | None  # the OS user that owns the cluster (root may not run postgres)
    _names: Iterator[int] = dataclasses.field(default_factory=itertools.count)
    version_num: int = 0  # server_version_num, known once started

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            log = self.directory / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{tail}"
            )

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "--no-sync",
            "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        self.resume()
        self.version_num = int(str(self._admin("SHOW server_version_num")))

    def resume(self) -> None:
        """Start the (initialised) cluster again after ``stop()``: the database is back."""
        options = (
            f"-c listen_addresses={HOST} -p {self.port} -k {self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.directory / "postgres.log"),
            "-w", "-t", str(START_TIMEOUT_SECONDS), "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def _admin(self, sql: str) -> object:
        import psycopg

        with psycopg.connect(
            host=HOST, port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            cursor = conn.execute(sql)  # type: ignore[arg-type,unused-ignore]  # our own names
            row = cursor.fetchone() if cursor.description else None
            return row[0] if row else None

    def create_database(self) -> str:
        name = f"test_{os.getpid()}_{next(self._names)}"
        # FILE_COPY (PostgreSQL 15+) takes 0.08 s here against 0.36 s for the default WAL_LOG.
        strategy = " STRATEGY = FILE_COPY" if self.version_num >= 150000 else ""
        self._admin(f'CREATE DATABASE "{name}"{strategy}')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cluster_owner() -> str | None:
    """Who runs the cluster: ``postgres`` when we are root (initdb refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        server_missing("running as root, but there is no 'postgres' user to own the cluster")
    if shutil.which("runuser") is None:
        server_missing("running as root, but runuser is missing")
    return "postgres"


@contextlib.contextmanager
def _cluster() -> Iterator[PostgresServer]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        server_missing("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin, no initdb)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        server_missing("psycopg is not installed")
    owner = _cluster_owner()
    directory = Path(tempfile.mkdtemp(prefix="mailbot-pg-"))
    if owner:
        shutil.chown(directory, user=owner, group=owner)
    server = PostgresServer(bin_dir=bin_dir, directory=directory, port=free_port(), run_as=owner)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        try:
            if (server.data_dir / "postmaster.pid").exists():  # a test may have stopped it
                server.stop()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with _cluster() as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A cluster of the test's own (about 1.5 s to make), which it may ``stop()`` and
    ``resume()``: the database going away under mailbot and coming back."""
    with _cluster() as server:
        yield server


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
