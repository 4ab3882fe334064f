"""sealed content: subjects, message details and outbox/raw bytes become sealed values

The columns become binary, and what they held is kept, tagged as written in clear (a 0x00 byte in
front). The migration holds no key, so it cannot encrypt; it leaves a ``storage.unsealed`` mark in
``meta``, and the first start with a storage key (``run``, ``migrate``, ``keys rotate``) seals
those values and recomputes the dedupe keys as keyed hashes.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, was text): text columns change type; binary ones only get the tag.
_COLUMNS = (
    ("cases", "subject", True),
    ("messages", "subject", True),
    ("messages", "details", True),
    ("outbox", "data", False),
    ("raw_messages", "data", False),
)
_BATCH = 500


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    any_rows = False
    for table, column, was_text in _COLUMNS:
        if was_text and postgres:
            op.alter_column(table, column, type_=sa.LargeBinary(), existing_nullable=False,
                            postgresql_using=f"convert_to({column}::text, 'UTF8')")
        if was_text and not postgres:
            # Not a batch rebuild: rebuilding ``cases`` would drop a table that messages refer
            # to. A new column, filled, then renamed into place (SQLite 3.35+).
            bind.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column}_sealed BLOB "
                                 "NOT NULL DEFAULT X''"))
            any_rows |= _tag_clear(bind, table, column, f"{column}_sealed")
            bind.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
            bind.execute(sa.text(f"ALTER TABLE {table} RENAME COLUMN {column}_sealed TO {column}"))
        else:
            any_rows |= _tag_clear(bind, table, column, column)
    if any_rows:
        bind.execute(sa.text("INSERT INTO meta (key, value) VALUES ('storage.unsealed', '1')"))


def _tag_clear(bind: sa.Connection, table: str, column: str, target: str) -> bool:
    """Prefix every value with the clear tag, a batch at a time (raw messages can be large)."""
    last = 0 if table != "cases" else ""
    seen = False
    while True:
        rows = bind.execute(sa.text(
            f"SELECT id, {column} FROM {table} WHERE id > :last ORDER BY id LIMIT {_BATCH}"
        ), {"last": last}).all()
        if not rows:
            return seen
        seen = True
        for pk, value in rows:
            data = value.encode("utf-8") if isinstance(value, str) else bytes(value or b"")
            bind.execute(
                sa.text(f"UPDATE {table} SET {target} = :v WHERE id = :id").bindparams(
                    sa.bindparam("v", type_=sa.LargeBinary())),
                {"v": b"\x00" + data, "id": pk})
            last = pk


def downgrade() -> None:
    raise NotImplementedError("sealed content cannot be turned back into text columns")
