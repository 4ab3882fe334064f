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

import logging
from collections.abc import Callable
from dataclasses import dataclass

from mailbot.config import Settings
from mailbot.crypto.aead import AesGcmSealer
from mailbot.crypto.handover import write_handover
from mailbot.crypto.keys import StorageKey
from mailbot.crypto.provision import prepare, sealer_for, write_canary
from mailbot.crypto.reseal import reseal_all
from mailbot.errors import StorageKeyError
from mailbot.store import Database, migrate

log = logging.getLogger("mailbot.crypto")



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
            write_handover(db, current, new_key)
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


def _finish(db: Database) -> None:
    """The canary under the new key: the old key alone no longer opens the database. The
    handover stays until a process starts with the new key configured (``finish_handover``),
    so that a daemon still configured with the old key keeps working until it is restarted."""
    write_canary(db)
