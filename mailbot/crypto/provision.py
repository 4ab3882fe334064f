"""Which key seals this database, and is it the right one?

``sealer_for(settings)`` reads the configured keys (``[storage] key_file`` or ``key_env``, plus
``previous_key_files``). With none configured and a SQLite database, the key lives beside the
database file (``mailbot.db.key``): generated there, once, when the database holds nothing sealed
yet. PostgreSQL needs a configured key: a key beside a database on another host would be a key
nobody backs up.

``prepare(db, sealer)`` then checks the key against the database's *canary*, a sealed value in the
``meta`` table: a wrong key is refused with both key ids named, before anything is read or written.
Values written in clear by an earlier version (or with ``encryption = "off"``) are sealed here.
"""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from mailbot.cases.models import Meta
from mailbot.config import Settings
from mailbot.crypto.aead import AesGcmSealer
from mailbot.crypto.keys import StorageKey, parse_key, read_key_file, write_key_file
from mailbot.errors import StorageKeyError
from mailbot.sealing import CLEAR, ClearSealer, IntegrityFailure, Sealer, key_id_of
from mailbot.store import Database

log = logging.getLogger("mailbot.crypto")

CANARY = "storage.canary"
UNSEALED = "storage.unsealed"  # set while values written in clear may remain
_CANARY_TEXT = b"mailbot storage canary"
_CANARY_IDENTITY = "meta.value:" + CANARY


def default_key_path(database_url: str) -> Path | None:
    """Where a generated key lives: beside the SQLite database file (None for other databases)."""
    if not database_url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(database_url).database
    if not database or database == ":memory:":
        return None
    return Path(database).resolve().with_name(Path(database).name + ".key")


@dataclass(frozen=True)
class KeySource:
    """Where the sealing key comes from, as ``check`` reports it."""

    key: StorageKey
    generated: bool = False


def load_key(settings: Settings, *, may_generate: bool) -> KeySource:
    storage = settings.storage
    if storage.key_env:
        value = os.environ.get(storage.key_env)
        if value is None:
            raise StorageKeyError(f"storage.key_env: the environment variable "
                                  f"{storage.key_env} is not set")
        return KeySource(parse_key(value, f"${storage.key_env}"))
    if storage.key_file:
        return KeySource(read_key_file(Path(storage.key_file)))
    path = default_key_path(settings.database.url)
    if path is None:
        raise StorageKeyError("storage.key_file: a storage key is needed for this database; "
                              "make one with `mailbot keys new-storage-key > FILE` and set "
                              "[storage] key_file (or key_env)")
    if path.exists():
        return KeySource(read_key_file(path))
    if not may_generate:
        raise StorageKeyError(f"no storage key: {path} does not exist and [storage] key_file is "
                              "not set; the database cannot be read without its key")
    key = write_key_file(path)
    log.warning("generated a storage key at %s (key id %s): back it up with the database; "
                "without it nothing stored can be read", path, key.id)
    return KeySource(key, generated=True)


def sealer_for(settings: Settings, *, may_generate: bool = True) -> Sealer:
    """The sealer the settings describe; the key beside a fresh SQLite database is made here."""
    if not settings.storage.encrypting:
        return ClearSealer()
    main = load_key(settings, may_generate=may_generate
                    and _database_is_new(settings.database.url))
    previous = [read_key_file(Path(p)) for p in settings.storage.previous_key_files]
    return AesGcmSealer([main.key, *previous])


def _database_is_new(url: str) -> bool:
    """No sealed data yet: no file, or no canary in it."""
    path = default_key_path(url)
    if path is None:
        return False
    if not path.with_name(path.name.removesuffix(".key")).exists():
        return True
    db = Database(url)
    try:
        return read_canary(db.engine) is None
    finally:
        db.dispose()


def read_canary(engine: Engine) -> bytes | None:
    try:
        with engine.connect() as conn:
            value = conn.execute(select(Meta.value).where(Meta.key == CANARY)).scalar()
    except DBAPIError:
        return None  # no meta table yet: a database never migrated
    return base64.b64decode(value) if value else None


def unsealed_flag(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            return conn.execute(select(Meta.key).where(Meta.key == UNSEALED)).first() is not None
    except DBAPIError:
        return False


def prepare(db: Database) -> None:
    """Refuse a key that does not open this database; seal what an earlier version left clear.

    Call after the schema is migrated and before anything reads content."""
    sealer = db.sealer
    canary = read_canary(db.engine)
    if canary is not None:
        _check_canary(sealer, canary)
    else:
        _check_first_sealed(db.url, sealer)
    must_seal = sealer.encrypting and (unsealed_flag(db.engine)
                                       or (canary is not None and canary[:1] == CLEAR))
    if must_seal and isinstance(sealer, AesGcmSealer):
        from mailbot.crypto.reseal import reseal_all

        sealer.legacy_clear = True
        try:
            counts = reseal_all(db, sealer)
        finally:
            sealer.legacy_clear = False
        if sum(counts.values()):
            log.warning("sealed %d values written in clear by an earlier version",
                        sum(counts.values()))
        write_canary(db)
    elif canary is None:
        write_canary(db)
    from mailbot.crypto.handover import finish_handover

    finish_handover(db)


def _first_sealed_key(url: str) -> str | None:
    """The key id of the first case's subject (a database written before it had a canary)."""
    from mailbot.cases.models import Case

    db = Database(url)
    try:
        with db.engine.connect() as conn:
            stored = conn.execute(select(Case.subject_stored).limit(1)).scalar()
    except DBAPIError:
        return None
    finally:
        db.dispose()
    return key_id_of(bytes(stored)) if stored is not None else None


def _holds_sealed_values(url: str) -> bool:
    return _first_sealed_key(url) is not None


def _check_first_sealed(url: str, sealer: Sealer) -> None:
    kid = _first_sealed_key(url)
    if kid is not None and kid not in getattr(sealer, "key_ids", []):
        raise StorageKeyError(f"the database is sealed with storage key {kid}, which is not "
                              "the configured key; set [storage] key_file to that key")


def reading_sealer(settings: Settings) -> Sealer:
    """For a command that only reads: the configured sealer, checked against the database (a
    wrong key is refused); where nothing is sealed yet and no key exists, one that opens what
    is stored in clear. Never makes a key, never writes."""
    db = Database(settings.database.url)
    try:
        canary = read_canary(db.engine)
    finally:
        db.dispose()
    try:
        sealer = sealer_for(settings, may_generate=False)
    except StorageKeyError:
        if canary is not None or _holds_sealed_values(settings.database.url):
            raise
        return ClearSealer()
    if canary is not None:
        _check_canary(sealer, canary)
    return sealer


def _check_canary(sealer: Sealer, canary: bytes) -> None:
    kid = key_id_of(canary)
    if not sealer.encrypting:
        if kid is not None:
            raise StorageKeyError(f"the database is sealed with storage key {kid}; "
                                  '[storage] encryption = "off" cannot read it')
        return
    if kid is None:
        return  # written with encryption off: sealed now
    try:
        sealer.open(canary, _CANARY_IDENTITY)
    except IntegrityFailure:
        held = ", ".join(getattr(sealer, "key_ids", []))
        raise StorageKeyError(f"the database is sealed with storage key {kid}, and the "
                              f"configured key{'s' if ',' in held else ''} ({held}) cannot "
                              "open it; set [storage] key_file to that key") from None


def write_canary(db: Database, drop: tuple[str, ...] = ()) -> None:
    """The canary, sealed with the current key: the database's record of which key it needs."""
    value = base64.b64encode(db.sealer.seal(_CANARY_TEXT, _CANARY_IDENTITY)).decode("ascii")
    with db.session() as session:
        row = session.get(Meta, CANARY)
        if row is None:
            session.add(Meta(key=CANARY, value=value))
        else:
            row.value = value
        for key in (UNSEALED, *drop):
            flag = session.get(Meta, key)
            if flag is not None:
                session.delete(flag)


def canary_key_id(db: Database) -> str | None:
    canary = read_canary(db.engine)
    return key_id_of(canary) if canary else None


def check_storage(settings: Settings) -> tuple[str | None, str]:
    """For ``mailbot check``: a problem (or None), and what to tell the operator either way."""
    if not settings.storage.encrypting:
        return None, ('encryption = "off": reports are stored in clear; anyone with a copy of '
                      "the database reads them")
    where = (f"${settings.storage.key_env}" if settings.storage.key_env
             else settings.storage.key_file or str(default_key_path(settings.database.url)))
    try:
        sealer = sealer_for(settings, may_generate=False)
    except StorageKeyError as exc:
        if not settings.storage.key_file and not settings.storage.key_env \
                and _database_is_new(settings.database.url):
            return None, f"no storage key yet: the first run generates one at {where}"
        return str(exc), ""
    db = Database(settings.database.url, sealer)
    try:
        canary = read_canary(db.engine)
        if canary is not None:
            _check_canary(sealer, canary)
    except StorageKeyError as exc:
        return str(exc), ""
    finally:
        db.dispose()
    kid = getattr(sealer, "key_id", "?")
    return None, f"encrypted at rest (AES-256-GCM) with key {kid} from {where}"
