"""Content at rest: the storage side of encryption, as the core sees it.

What a reporter wrote (raw messages, subjects, attachment names, the outbox copies of our mail) is
kept in *sealed* columns. The core reads and writes them as plain attributes (``case.subject``,
``message.details``, ``outbox.data``); a ``Sealer`` that the database carries turns them into
stored bytes at flush time and back on first read. The core never imports the sealer that
encrypts: ``mailbot.crypto`` builds one and hands it to ``Database``.

Why at flush and not in a column type: each sealed value is bound to its row (table, column and
primary key are the associated data), so that a ciphertext copied onto another row does not open.
A column type sees the value alone, never its row; the flush sees both, after it has given new rows
their ids (``allocate_ids``).

A stored value starts with one byte that says what follows:

    0x00  the value in clear (``encryption = "off"``, or written before encryption existed)
    0x01  key id (8 bytes), nonce (12 bytes), AES-256-GCM ciphertext and tag (mailbot.crypto)
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, Protocol, TypeVar, overload

from sqlalchemy import Connection, Select, Table, event, func, select, text
from sqlalchemy.orm import InstanceState, Session

from mailbot.errors import PermanentError

CLEAR = b"\x00"
PENDING = b"\xffpending"  # a plain value was set; the flush seals it


class IntegrityFailure(PermanentError):
    """A stored value does not open: tampered, truncated, or sealed with a key we do not hold."""


class Sealer(Protocol):
    """Turns plain bytes into stored bytes and back, bound to an identity (``table.column:pk``)."""

    @property
    def encrypting(self) -> bool: ...

    def seal(self, plain: bytes, identity: str) -> bytes: ...

    def open(self, stored: bytes, identity: str) -> bytes: ...

    def index_keys(self, digest: str) -> list[str]:
        """What a content hash is stored as (first) and may have been stored as (all): keyed
        with each key the sealer holds, so the database cannot confirm a guessed report."""
        ...


class ClearSealer:
    """``encryption = "off"``: values are stored in clear (tagged as such), hashes unkeyed."""

    encrypting = False

    def seal(self, plain: bytes, identity: str) -> bytes:
        return CLEAR + plain

    def open(self, stored: bytes, identity: str) -> bytes:
        if stored[:1] != CLEAR:
            raise IntegrityFailure(f"{identity} is sealed with storage key "
                                   f"{key_id_of(stored) or '?'}, and encryption is off")
        return bytes(stored[1:])

    def index_keys(self, digest: str) -> list[str]:
        return [digest]


class NoSealer:
    """The sealer of a database opened without its storage key: any content access is a bug."""

    encrypting = True

    def seal(self, plain: bytes, identity: str) -> bytes:
        raise RuntimeError(f"{identity} written through a database opened without a sealer")

    def open(self, stored: bytes, identity: str) -> bytes:
        raise RuntimeError(f"{identity} read through a database opened without a sealer")

    def index_keys(self, digest: str) -> list[str]:
        raise RuntimeError("a content hash asked of a database opened without a sealer")


def key_id_of(stored: bytes) -> str | None:
    """The id of the key a stored value was sealed with (None: in clear or unreadable)."""
    if stored[:1] == b"\x01" and len(stored) >= 9:
        return bytes(stored[1:9]).hex()
    return None


# ---------------------------------------------------------------------------------------------
# Codecs: the plain value of a sealed attribute, as bytes

T = TypeVar("T")


class Codec(Generic[T]):
    def __init__(self, encode: Callable[[T], bytes], decode: Callable[[bytes], T],
                 default: Callable[[], T]) -> None:
        self.encode, self.decode, self.default = encode, decode, default


TEXT: Codec[str] = Codec(lambda v: v.encode("utf-8"), lambda b: b.decode("utf-8"), str)
JSON_DICT: Codec[dict[str, Any]] = Codec(
    lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
    lambda b: dict(json.loads(b)), dict)
BYTES: Codec[bytes] = Codec(bytes, bytes, bytes)
# A text that may be absent (``case.credit``): None is stored as NULL, not sealed; that a value
# exists is no secret where a clear column says so anyway (``credit_consent``).
OPTIONAL_TEXT: Codec[str | None] = Codec(lambda v: (v or "").encode("utf-8"),
                                         lambda b: b.decode("utf-8"), lambda: None)


# ---------------------------------------------------------------------------------------------
# Sealed attributes on models

_PLAIN = "_mailbot_plain"  # instance __dict__ keys: plain values read or set
_SEALER = "_mailbot_sealer"


class Sealed(Generic[T]):
    """A model attribute whose plain value is stored sealed in the mapped attribute ``column``."""

    def __init__(self, column: str, codec: Codec[T]) -> None:
        self.column = column
        self.codec = codec
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Sealed[T]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object | None, owner: type) -> Sealed[T] | T:
        if obj is None:
            return self
        plain: dict[str, Any] = obj.__dict__.setdefault(_PLAIN, {})
        if self.name in plain:
            value: T = plain[self.name]
            return value
        stored = getattr(obj, self.column)
        if stored is None or stored == PENDING:
            value = self.codec.default()
        else:
            sealer: Sealer | None = obj.__dict__.get(_SEALER)
            if sealer is None:
                raise RuntimeError(f"{type(obj).__name__}.{self.name} read without a sealer")
            identity = identity_of(obj, self.name)
            opened = sealer.open(bytes(stored), identity)
            try:
                value = self.codec.decode(opened)
            except ValueError as exc:
                raise IntegrityFailure(f"{identity} opened but does not decode: {exc}") from None
        plain[self.name] = value
        return value

    def __set__(self, obj: object, value: T) -> None:
        obj.__dict__.setdefault(_PLAIN, {})[self.name] = value
        setattr(obj, self.column, PENDING)


class SealedRow:
    """A model with sealed attributes: ``__sealed__`` lists them."""

    __sealed__: ClassVar[tuple[Sealed[Any], ...]] = ()


def identity_of(obj: object, column: str) -> str:
    table: Table = obj.__table__  # type: ignore[attr-defined]
    return identity(table.name, column, _pk(obj))


def identity(table: str, column: str, pk: object) -> str:
    """What a stored value is bound to: ``messages.subject:42``."""
    return f"{table}.{column}:{pk}"


def _pk(obj: object) -> object:
    pk = obj.id  # type: ignore[attr-defined]
    if pk is None:
        raise RuntimeError(f"{type(obj).__name__} has no id to seal against")
    return pk


def _forget_plain(state: InstanceState[Any], *_: Any) -> None:
    state.obj().__dict__.pop(_PLAIN, None)


def _on_load(state: InstanceState[Any], context: Any) -> None:
    obj = state.obj()
    obj.__dict__.pop(_PLAIN, None)
    obj.__dict__[_SEALER] = context.session.info.get("sealer")


def _on_refresh(state: InstanceState[Any], context: Any, _attrs: Any) -> None:
    _on_load(state, context)


def install(base: type) -> None:
    """Listen on ``base`` (the declarative base) for loads and expiries of sealed rows."""
    event.listen(base, "load", _on_load, propagate=True, raw=True)
    event.listen(base, "refresh", _on_refresh, propagate=True, raw=True)
    event.listen(base, "expire", _forget_plain, propagate=True, raw=True)


def seal_pending(session: Session, sealer: Sealer) -> None:
    """Before a flush: give new sealed rows their ids, then seal every plain value set."""
    rows = [o for o in (*session.new, *session.dirty) if isinstance(o, SealedRow)]
    if not rows:
        return
    needing: dict[Table, list[Any]] = defaultdict(list)
    for obj in rows:
        if obj.__dict__.get("id") is None:
            needing[obj.__table__].append(obj)  # type: ignore[attr-defined]
    if needing:
        conn = session.connection()
        for table, objs in needing.items():
            for obj, new_id in zip(objs, allocate_ids(conn, table, len(objs)), strict=True):
                obj.id = new_id
    new = set(map(id, session.new))
    for obj in rows:
        obj.__dict__[_SEALER] = sealer
        plain = obj.__dict__.get(_PLAIN, {})
        for field in type(obj).__sealed__:
            stored = obj.__dict__.get(field.column)
            # A loaded row whose column is not in memory (expired) keeps what is stored.
            if stored == PENDING or (stored is None and id(obj) in new):
                value = plain.get(field.name, field.codec.default())
                if value is None:  # an absent optional value: NULL, nothing to seal
                    setattr(obj, field.column, None)
                    continue
                sealed = sealer.seal(field.codec.encode(value), identity_of(obj, field.name))
                setattr(obj, field.column, sealed)


def allocate_ids(conn: Connection, table: Table, n: int) -> list[int]:
    """``n`` fresh primary keys for ``table``, known before the INSERT (sealing needs them).

    PostgreSQL: the column's own sequence. SQLite: the next after the largest, as SQLite itself
    would choose; safe because every write transaction there begins IMMEDIATE (one writer)."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": n})
        return [int(r[0]) for r in rows]
    top_of = _TOP_ID.get(table.name)
    if top_of is None:
        top_of = _TOP_ID[table.name] = select(func.coalesce(func.max(table.c.id), 0))
    top = int(conn.execute(top_of).scalar_one())
    return list(range(top + 1, top + n + 1))


_TOP_ID: dict[str, Select[Any]] = {}  # per table, built once


def bind_session_events(session_factory: Any) -> None:
    """Seal at every flush of sessions from ``session_factory`` (their ``info["sealer"]``)."""

    @event.listens_for(session_factory, "before_flush")
    def _before_flush(session: Session, _ctx: Any, _instances: Iterable[Any] | None) -> None:
        sealer = session.info.get("sealer")
        if sealer is None:
            raise RuntimeError("a session without a sealer wrote sealed rows")
        seal_pending(session, sealer)


def mark_sealer(obj: object, sealer: Sealer) -> None:
    obj.__dict__[_SEALER] = sealer


