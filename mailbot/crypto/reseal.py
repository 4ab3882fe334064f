"""Re-sealing: every stored value under the sealer's current key, in small batches.

One pass serves three purposes: sealing what an earlier version (or ``encryption = "off"``) wrote in
clear, key rotation, and recomputing the keyed dedupe hashes that go with a key. Each batch is one
transaction, and each value carries the id of the key that sealed it, so a pass killed at any point
(kill -9 included) is resumed by running it again: rows already under the current key are skipped.
A value that does not open is reported with its row and left as it is; nothing is dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Table, select, update

from mailbot import rawbytes
from mailbot.cases.models import Case, Event, InboundFailure, Message, Outbox, RawMessage
from mailbot.crypto.aead import AesGcmSealer
from mailbot.mail.parse import dedupe_key
from mailbot.sealing import IntegrityFailure, identity, key_id_of
from mailbot.store import Database

log = logging.getLogger("mailbot.crypto")

BATCH = 200


@dataclass(frozen=True)
class SealedColumns:
    table: Table
    columns: tuple[str, ...]  # database column names


SEALED_TABLES = (
    SealedColumns(Case.__table__, ("subject", "credit")),  # type: ignore[arg-type]
    SealedColumns(Message.__table__, ("subject", "details")),  # type: ignore[arg-type]
    SealedColumns(Event.__table__, ("detail", "source")),  # type: ignore[arg-type]
    SealedColumns(Outbox.__table__, ("data",)),  # type: ignore[arg-type]
    SealedColumns(InboundFailure.__table__, ("last_error",)),  # type: ignore[arg-type]
    SealedColumns(RawMessage.__table__, ("data",)),  # type: ignore[arg-type]
)


def reseal_all(db: Database, sealer: AesGcmSealer,
               progress: Callable[[str, int], None] | None = None,
               batch: int | None = None) -> Counter[str]:
    """Re-seal every value not under ``sealer.key_id``; counts per table, and ``failed``."""
    counts: Counter[str] = Counter()
    for spec in SEALED_TABLES:
        _reseal_table(db, sealer, spec, counts, progress, batch or BATCH)
    return counts


def _reseal_table(db: Database, sealer: AesGcmSealer, spec: SealedColumns,
                  counts: Counter[str], progress: Callable[[str, int], None] | None,
                  batch: int) -> None:
    table = spec.table
    pk = table.c.id
    last: object = None
    is_raw = table.name == "raw_messages"
    while True:
        with db.session() as session:
            conn = session.connection()
            stmt = select(pk, *(table.c[c] for c in spec.columns)).order_by(pk).limit(batch)
            if last is not None:
                stmt = stmt.where(pk > last)
            rows = conn.execute(stmt).all()
            if not rows:
                return
            for row in rows:
                last = row[0]
                values: dict[str, bytes] = {}
                for column, stored in zip(spec.columns, row[1:], strict=True):
                    if stored is None or key_id_of(bytes(stored)) == sealer.key_id:
                        continue
                    where = identity(table.name, column, row[0])
                    try:
                        plain = sealer.open(bytes(stored), where)
                    except IntegrityFailure as exc:
                        log.error("cannot re-seal %s: %s", _describe(conn, table.name, row[0]),
                                  exc)
                        counts["failed"] += 1
                        continue
                    values[column] = sealer.seal(plain, where)
                    if is_raw:
                        _rekey_dedupe(conn, sealer, int(row[0]), rawbytes.unpack(plain))
                if values:
                    conn.execute(update(table).where(pk == row[0]).values(**values))
                    counts[table.name] += 1
        if progress is not None:
            progress(table.name, counts[table.name])


def _rekey_dedupe(conn: Connection, sealer: AesGcmSealer, raw_id: int, raw: bytes) -> None:
    """The dedupe key of the message kept in ``raw_id``, keyed with the current key."""
    key = sealer.index_keys(dedupe_key(raw))[0]
    conn.execute(update(Message.__table__).where(  # type: ignore[arg-type]
        Message.__table__.c.raw_id == raw_id, Message.__table__.c.direction == "in",
    ).values(dedupe_key=key))


def _describe(conn: Connection, table: str, pk: object) -> str:
    """A row named for a person: the case it belongs to, when there is one."""
    if table == "cases":
        return f"case {pk}"
    if table == "messages":
        case = conn.execute(select(Message.case_id).where(Message.id == pk)).scalar()
        return f"message {pk} of case {case}"
    if table == "events":
        case = conn.execute(select(Event.case_id).where(Event.id == pk)).scalar()
        return f"event {pk} of case {case}"
    if table == "inbound_failures":
        return f"failure record {pk}"
    if table == "outbox":
        case = conn.execute(select(Outbox.case_id).where(Outbox.id == pk)).scalar()
        return f"outbox message {pk}" + (f" of case {case}" if case else "")
    case = conn.execute(select(Message.case_id).where(Message.raw_id == pk)).scalar()
    return f"raw message {pk}" + (f" of case {case}" if case else "")
