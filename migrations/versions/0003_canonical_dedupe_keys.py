"""canonical dedupe keys: recompute every stored inbound message's key from its raw bytes

The dedupe key is now computed over a canonical form of the message (line endings, trailing
whitespace, mbox quoting), so that copies from IMAP, .eml files and mboxes are one message.
Keys stored before were computed over the bytes as they were; this recomputes them from the
stored raw bytes, read through the storage interface.

Copies already stored twice (the very doubles the new key prevents) would now share a key: the
first keeps it, the others keep their old key, and their cases stay as they are.

Revision ID: 0003
Revises: 0002
"""

import hashlib
import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

from mailbot.mail.parse import dedupe_key
from mailbot.store import CompressedRawStore

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("mailbot.migrations")

_messages = sa.table(
    "messages",
    sa.column("id", sa.BigInteger),
    sa.column("direction", sa.String),
    sa.column("dedupe_key", sa.String),
    sa.column("raw_id", sa.BigInteger),
)
BATCH = 500


def upgrade() -> None:
    session = Session(bind=op.get_bind())
    store = CompressedRawStore()
    rows = session.execute(
        sa.select(_messages.c.id, _messages.c.dedupe_key, _messages.c.raw_id)
        .where(_messages.c.direction == "in", _messages.c.raw_id.is_not(None))
        .order_by(_messages.c.id)
    ).all()
    taken: set[str] = set()
    changes: list[dict[str, object]] = []
    kept_apart = 0
    for n, (message_id, old, raw_id) in enumerate(rows, 1):
        new = dedupe_key(store.get(session, raw_id))
        if new in taken:
            kept_apart += 1
            new = old if old not in taken else _unique(old, message_id)
        taken.add(new)
        if n % BATCH == 0:
            session.expunge_all()  # the raw rows read so far: nothing holds on to their bytes
        if new != old:
            changes.append({"row": message_id, "key": new})
    # Two steps, so that no row ever takes a key that another still holds.
    _update(session, [{"row": c["row"], "key": f"recomputing:{c['row']}"} for c in changes])
    _update(session, changes)
    session.flush()
    if kept_apart:
        log.warning("%d stored message(s) turned out to be copies of others; their cases are "
                    "left as they are", kept_apart)


def _unique(old: str, message_id: int) -> str:
    return hashlib.sha256(f"{old}:{message_id}".encode()).hexdigest()


def _update(session: Session, values: list[dict[str, object]]) -> None:
    stmt = (
        sa.update(_messages)
        .where(_messages.c.id == sa.bindparam("row"))
        .values(dedupe_key=sa.bindparam("key"))
    )
    for first in range(0, len(values), BATCH):
        session.execute(stmt, values[first : first + BATCH])


def downgrade() -> None:
    # The earlier keys cannot be computed any more; the canonical ones still find every copy
    # that was byte for byte the same.
    pass
