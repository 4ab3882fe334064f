"""Key rotation: everything re-sealed under a new key while the daemon may keep running.

1. The new key is handed over through the database: ``meta["storage.handover"]`` holds it, sealed
   under the current key. A running daemon (which holds only the current key) picks it up at its
   next pass, or at once when it meets a value sealed with it, and from then on seals with it.
2. Every value not under the new key is re-sealed, a batch per transaction (``reseal``); a second
   pass catches what the daemon wrote before it learned the new key.
3. In one transaction the canary is re-sealed under the new key and the handover is deleted: from
   then on the old key alone no longer opens the database.

Killed at any point, ``keys rotate`` run again picks up where it was: each value names its key.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from mailbot.cases.models import Meta
from mailbot.config import Settings
from mailbot.crypto.aead import AesGcmSealer
from mailbot.crypto.keys import StorageKey
from mailbot.crypto.provision import prepare, sealer_for, write_canary
from mailbot.crypto.reseal import reseal_all
from mailbot.errors import StorageKeyError
from mailbot.sealing import IntegrityFailure
from mailbot.store import Database, migrate

log = logging.getLogger("mailbot.crypto")

HANDOVER = "storage.handover"
_HANDOVER_IDENTITY = "meta.value:" + HANDOVER


@dataclass
class RotationReport:
    resealed: int = 0
    failed: int = 0


def rotate_storage(settings: Settings, new_key: StorageKey,
                   progress: Callable[[str, int], None] | None = None,
                   batch: int | None = None) -> RotationReport:
    current = sealer_for(settings, may_generate=False)
    if not isinstance(current, AesGcmSealer):
        raise StorageKeyError('[storage] encryption is "off": there is no key to rotate')
    # Old keys first (clear values left by an upgrade are sealed under them by ``prepare``),
    # the new one last: a rotation cut short after its last step still opens.
    checking = AesGcmSealer([*current.keys, new_key])
    db = Database(settings.database.url, checking)
    try:
        migrate(db)
        prepare(db)
        handing_over = current.key_id != new_key.id
        if handing_over:
            _write_handover(db, current, new_key)
        rotating = AesGcmSealer([new_key, *current.keys])
        db.use_sealer(rotating)
        report = RotationReport()
        for _ in range(2):  # the second pass: what a running daemon wrote meanwhile
            counts = reseal_all(db, rotating, progress, batch=batch)
            report.resealed += sum(v for k, v in counts.items() if k != "failed")
            report.failed = counts["failed"]
        if report.failed == 0:
            _finish(db)
        return report
    finally:
        db.dispose()


def _write_handover(db: Database, current: AesGcmSealer, new_key: StorageKey) -> None:
    sealed = base64.b64encode(current.seal(new_key.secret, _HANDOVER_IDENTITY)).decode("ascii")
    value = f"{new_key.id}:{sealed}"  # the id in clear: the new key's first start removes it
    with db.session() as session:
        row = session.get(Meta, HANDOVER)
        if row is None:
            session.add(Meta(key=HANDOVER, value=value))
        else:
            row.value = value


def _finish(db: Database) -> None:
    """The canary under the new key: the old key alone no longer opens the database. The
    handover stays until a process starts with the new key configured (``finish_handover``),
    so that a daemon still configured with the old key keeps working until it is restarted."""
    write_canary(db)


def _handover_row(engine: Engine) -> tuple[str, bytes] | None:
    # A plain read on a connection of its own, outside SQLAlchemy's transaction handling: this
    # may run while the caller's session holds SQLite's write lock, and a new SQLAlchemy
    # transaction there begins IMMEDIATE, which would wait for that very lock.
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"SELECT value FROM meta WHERE key = '{HANDOVER}'")
        found = cur.fetchone()
        cur.close()
        raw.rollback()
    except Exception as exc:  # the driver's own errors: no meta table yet, or no database
        log.debug("no key handover to read: %s", exc)
        return None
    finally:
        raw.close()
    value = found[0] if found else None
    if not value or ":" not in value:
        return None
    kid, _, sealed = value.partition(":")
    return kid, base64.b64decode(sealed)


def finish_handover(db: Database) -> None:
    """At the start of a process configured with the handed-over key: re-seal what an old-key
    process wrote after the rotation, then drop the handover (the old key then opens nothing)."""
    sealer = db.sealer
    row = _handover_row(db.engine)
    if row is None or not isinstance(sealer, AesGcmSealer) or row[0] != sealer.key_id:
        return
    counts = reseal_all(db, sealer)
    if counts["failed"]:
        log.error("%d values are still sealed with the previous storage key; add it to "
                  "[storage] previous_key_files to re-seal them", counts["failed"])
        return
    with db.session() as session:
        handover = session.get(Meta, HANDOVER)
        if handover is not None:
            session.delete(handover)
    log.info("key rotation finished: the previous storage key no longer opens this database")


def read_handover(engine: Engine, sealer: AesGcmSealer) -> StorageKey | None:
    """The key a rotation hands over, if any (and if ``sealer`` opens it)."""
    row = _handover_row(engine)
    if row is None:
        return None
    try:
        secret = sealer.open(row[1], _HANDOVER_IDENTITY)
    except IntegrityFailure:
        return None
    return StorageKey(secret, "the key handed over by `mailbot keys rotate`")


def follow_rotation(db: Database) -> None:
    """Make ``db``'s sealer follow a rotation run by another process (the daemon does this)."""
    sealer = db.sealer
    if not isinstance(sealer, AesGcmSealer):
        return

    def find(kid: str) -> StorageKey | None:
        key = read_handover(db.engine, sealer)
        return key if key is not None and key.id == kid else None

    sealer.find_key = find


def learn_handover(db: Database) -> None:
    """At the start of each pass: seal with the handed-over key when a rotation is running."""
    sealer = db.sealer
    if isinstance(sealer, AesGcmSealer):
        key = read_handover(db.engine, sealer)
        if key is not None and key.id != sealer.key_id:
            log.info("a key rotation is running: sealing with storage key %s from now on", key.id)
            sealer.learn(key)

