"""The database edge: engines, transactions, raw-message storage, schema migrations and locks."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import Connection, Engine, create_engine, event, insert, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from mailbot import rawbytes
from mailbot.cases.models import RawMessage
from mailbot.errors import DatabaseUnavailable, InstanceLockedError
from mailbot.resources import resource_dir
from mailbot.sealing import NoSealer, Sealer, allocate_ids, bind_session_events, identity

log = logging.getLogger("mailbot.store")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            # Content that is purged or re-sealed must not linger in free pages of the file.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()
            # pysqlite's own transaction handling breaks SAVEPOINT; take it over (SQLAlchemy's
            # documented recipe) and start every transaction as a writer, so that two writers
            # wait for each other instead of failing with "database is locked".
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, connect_args=_pg_keepalives(url))


def _pg_keepalives(url: str) -> dict[str, Any]:
    # A holder of an advisory lock that vanishes without closing TCP would keep the lock until
    # keepalive notices; make that minutes rather than hours.
    if "postgresql" in url:
        return {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                "keepalives_count": 3, "connect_timeout": 10}
    return {}


class Database:
    """Sessions with one rule: a ``with db.session() as s`` block commits or rolls back whole.

    ``sealer`` keeps content secret at rest (``mailbot.sealing``); every session of this database
    seals what it writes with it. Without one, reading or writing content raises: a database
    opened for the schema or a lock never falls back to writing content in clear."""

    def __init__(self, url: str, sealer: Sealer | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        bind_session_events(self._sessions)
        self.use_sealer(sealer or NoSealer())

    def use_sealer(self, sealer: Sealer) -> None:
        """Seal with ``sealer`` from the next session on."""
        self.sealer = sealer
        self._sessions.kw["info"] = {"sealer": sealer}
        self.raw_store = SealedRawStore(sealer)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            if exc.connection_invalidated or _is_connection_error(exc):
                raise DatabaseUnavailable(f"database unavailable: {exc.orig}") from exc
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise DatabaseUnavailable(f"cannot reach the database: {exc.orig}") from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _is_connection_error(exc: OperationalError) -> bool:
    message = str(exc.orig).lower()
    return any(s in message for s in ("connection", "could not connect", "server closed",
                                      "terminating", "unable to open database"))


# ---------------------------------------------------------------------------------------------
# Raw messages


class RawStore(Protocol):
    """Where the bytes of every message are kept. Intake only ever calls ``put`` and ``get``;
    ``index_keys`` says what a content hash (the dedupe key) is stored as: keyed when the store
    encrypts, so that the database cannot confirm a guessed report."""

    def put(self, session: Session, raw: bytes, *, packed: bytes | None = None) -> int:
        """Keep ``raw``; ``packed``: the same bytes as ``mailbot.rawbytes`` packs them, when
        that was done already."""
        ...

    def get(self, session: Session, raw_id: int) -> bytes: ...

    def index_keys(self, digest: str) -> list[str]: ...


_INSERT_RAW = insert(RawMessage)
_RAW_TABLE = RawMessage.__table__


class SealedRawStore:
    """Packed (``mailbot.rawbytes``: zlib), then sealed, bytes in the ``raw_messages`` table."""

    codec = rawbytes.CODEC

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer

    def put(self, session: Session, raw: bytes, *, packed: bytes | None = None) -> int:
        # A Core INSERT on the session's connection rather than an ORM object and a flush: a
        # third of the cost per message, and the session does not hold on to the compressed
        # bytes until its batch commits. The id comes first: the sealed bytes are bound to it.
        conn = session.connection()
        (raw_id,) = allocate_ids(conn, _RAW_TABLE, 1)  # type: ignore[arg-type]
        data = self.sealer.seal(packed if packed is not None else rawbytes.pack(raw),
                                identity("raw_messages", "data", raw_id))
        conn.execute(_INSERT_RAW, {"id": raw_id, "size": len(raw), "codec": self.codec,
                                   "data": data})
        return raw_id

    def get(self, session: Session, raw_id: int) -> bytes:
        row = session.get(RawMessage, raw_id)
        if row is None:
            raise KeyError(raw_id)
        return self.open_row(raw_id, row.codec, row.data)

    def open_row(self, raw_id: int, codec: str, data: bytes) -> bytes:
        if codec != self.codec:
            raise ValueError(f"raw message {raw_id} is stored as {codec!r}")
        plain = self.sealer.open(bytes(data), identity("raw_messages", "data", raw_id))
        return rawbytes.unpack(plain)

    def index_keys(self, digest: str) -> list[str]:
        return self.sealer.index_keys(digest)


class CompressedRawStore:
    """Raw messages as stored before encryption at rest (zlib, untagged): only for the
    migrations that run before ``0005`` (sealed content) and read the bytes then."""

    codec = "zlib"

    def put(self, session: Session, raw: bytes, *, packed: bytes | None = None) -> int:
        # ``packed`` is not this store's packing (level 6, as these rows always were).
        values = {"size": len(raw), "codec": self.codec, "data": zlib.compress(raw, 6)}
        return int(session.connection().execute(
            insert(RawMessage).returning(RawMessage.id), values).scalar_one())

    def get(self, session: Session, raw_id: int) -> bytes:
        row = session.get(RawMessage, raw_id)
        if row is None:
            raise KeyError(raw_id)
        if row.codec != self.codec:
            raise ValueError(f"raw message {raw_id} is stored as {row.codec!r}")
        return zlib.decompress(row.data)


# ---------------------------------------------------------------------------------------------
# Schema


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resource_dir("migrations")))
    cfg.attributes["connection"] = connection
    return cfg


_MIGRATE_LOCK = zlib.crc32(b"mailbot:migrate")


def migrate(db: Database) -> str:
    """Bring the schema to the latest version; return that version."""
    from alembic import command

    try:
        with db.engine.begin() as conn:
            if not db.is_sqlite:
                # Instances started together would each create the tables and all but one fail;
                # the lock lasts until this transaction commits, so the others then find it done.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK})
            command.upgrade(_alembic_config(conn), "head")
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot migrate the database: {exc.orig}") from exc
    return schema_version(db) or ""


def schema_version(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def latest_schema_version() -> str:
    from alembic.script import ScriptDirectory

    with make_engine("sqlite://").connect() as conn:
        head = ScriptDirectory.from_config(_alembic_config(conn)).get_current_head()
    return head or ""


# ---------------------------------------------------------------------------------------------
# Locks


class InstanceLock:
    """SQLite serves one instance: an flock beside the database file, released when the process
    dies (kill -9 included), so a restart right after a crash proceeds."""

    def __init__(self, handle: IO[str] | None) -> None:
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def acquire_instance_lock(db: Database) -> InstanceLock:
    if not db.is_sqlite:
        return InstanceLock(None)  # PostgreSQL: several instances coordinate with row locks
    database = db.engine.url.database
    if not database or database == ":memory:":
        return InstanceLock(None)
    path = Path(database).resolve().with_name(Path(database).name + ".lock")
    handle = open(path, "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise InstanceLockedError(
            f"another mailbot is already running on {database} (lock {path}); SQLite serves one "
            "instance; use PostgreSQL to run several"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return InstanceLock(handle)


@contextmanager
def sending_lock(db: Database) -> Iterator[bool]:
    """Whether this process may send the outbox now (False: another one is sending).

    On SQLite the drain does not hold a transaction while the SMTP server answers: SQLite's one
    writer lock would stall intake for as long as the server takes. This flock beside the database
    file stands in for the row locks instead, so that two processes on one file (the daemon and
    ``deadlines check``) never send the same row. PostgreSQL needs none: rows are claimed with
    ``FOR UPDATE SKIP LOCKED`` and stay locked while they are sent."""
    database = db.engine.url.database if db.is_sqlite else None
    if not database or database == ":memory:":
        yield True
        return
    path = Path(database).resolve().with_name(Path(database).name + ".sending.lock")
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the file releases the lock, and so does the death of the process


class LeaderLock:
    """One reader per mailbox on PostgreSQL: a session advisory lock on a dedicated connection.

    The lock dies with the connection, so when its holder dies another instance takes over at its
    next try. On SQLite the instance lock already guarantees a single reader."""

    def __init__(self, db: Database, name: str) -> None:
        self._db = db
        self._key = zlib.crc32(f"mailbot:{name}".encode())
        self._engine: Engine | None = None
        self._conn: Connection | None = None

    @property
    def held(self) -> bool:
        return self._db.is_sqlite or self._conn is not None

    def try_acquire(self) -> bool:
        if self._db.is_sqlite:
            return True
        if self._conn is not None:
            if self._alive():
                return True
            self.release()
        if self._engine is None:
            self._engine = create_engine(self._db.url, poolclass=NullPool,
                                         connect_args=_pg_keepalives(self._db.url))
        try:
            conn = self._engine.connect()
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                    {"k": self._key}).scalar())
            conn.commit()
        except DBAPIError as exc:
            raise DatabaseUnavailable(
                f"database unavailable for the mailbox reader lock: {exc.orig}"
            ) from exc
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("took the mailbox reader lock")
        return True

    def _alive(self) -> bool:
        assert self._conn is not None
        try:
            self._conn.execute(select(1))
            self._conn.commit()
            return True
        except DBAPIError:
            log.warning("lost the connection that held the mailbox reader lock")
            return False

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.close()
            self._conn = None
