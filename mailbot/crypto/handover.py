"""The key handover of a rotation, through the database (see ``mailbot.crypto.rotation``).

``meta["storage.handover"]`` holds ``<new key id>:<new key sealed under the old key>``. A process
that holds the old key learns the new one from it (``follow_rotation``, ``learn_handover``); the
first process configured with the new key re-seals what was written meanwhile and removes it
(``finish_handover``), after which the old key opens nothing.
"""

from __future__ import annotations

import base64
import logging

from sqlalchemy import Engine

from mailbot.cases.models import Meta
from mailbot.crypto.aead import AesGcmSealer
from mailbot.crypto.keys import StorageKey
from mailbot.crypto.reseal import reseal_all
from mailbot.sealing import IntegrityFailure
from mailbot.store import Database

log = logging.getLogger("mailbot.crypto")

HANDOVER = "storage.handover"
_HANDOVER_IDENTITY = "meta.value:" + HANDOVER


def write_handover(db: Database, current: AesGcmSealer, new_key: StorageKey) -> None:
    sealed = base64.b64encode(current.seal(new_key.secret, _HANDOVER_IDENTITY)).decode("ascii")
    value = f"{new_key.id}:{sealed}"  # the id in clear: the new key's first start removes it
    with db.session() as session:
        row = session.get(Meta, HANDOVER)
        if row is None:
            session.add(Meta(key=HANDOVER, value=value))
        else:
            row.value = value


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
