"""sealed credit, event details and failure texts: more columns become sealed values

``cases.credit`` (the name a reporter asked to be credited under), ``events.detail`` and
``events.source`` (command arguments, a ``/credit "Name"`` among them; a command given on the
command line is its source) and ``inbound_failures.last_error`` (an error text can quote the
message) become binary columns, as 0005 did for the content columns: what they hold
is kept, tagged as written in clear (a 0x00 byte in front), and the ``storage.unsealed`` mark in
``meta`` has the first start with a storage key seal them.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, nullable)
_COLUMNS = (
    ("cases", "credit", True),
    ("events", "detail", False),
    ("events", "source", False),
    ("inbound_failures", "last_error", False),
)
_BATCH = 500


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    any_rows = False
    for table, column, nullable in _COLUMNS:
        if postgres:
            # One statement: the text (json as its text) in UTF-8 behind the clear tag.
            op.alter_column(table, column, type_=sa.LargeBinary(), existing_nullable=nullable,
                            postgresql_using=f"'\\x00'::bytea || convert_to({column}::text, "
                                             "'UTF8')")
            any_rows |= bind.execute(sa.text(
                f"SELECT 1 FROM {table} WHERE {column} IS NOT NULL LIMIT 1")).first() is not None
        else:
            # Not a batch rebuild (``cases`` is referred to by other tables): a new column,
            # filled, then renamed into place, as 0005 does (SQLite 3.35+).
            constraint = "" if nullable else " NOT NULL DEFAULT X''"
            bind.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column}_sealed BLOB"
                                 f"{constraint}"))
            any_rows |= _tag_clear(bind, table, column)
            bind.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
            bind.execute(sa.text(f"ALTER TABLE {table} RENAME COLUMN {column}_sealed TO {column}"))
    marked = bind.execute(sa.text("SELECT 1 FROM meta WHERE key = 'storage.unsealed'")).first()
    if any_rows and marked is None:
        bind.execute(sa.text("INSERT INTO meta (key, value) VALUES ('storage.unsealed', '1')"))


def _tag_clear(bind: sa.Connection, table: str, column: str) -> bool:
    """Copy every value behind the clear tag into ``<column>_sealed``, a batch at a time."""
    last: object = "" if table == "cases" else 0
    seen = False
    update = sa.text(f"UPDATE {table} SET {column}_sealed = :v WHERE id = :id").bindparams(
        sa.bindparam("v", type_=sa.LargeBinary()))
    while True:
        rows = bind.execute(sa.text(
            f"SELECT id, {column} FROM {table} WHERE id > :last ORDER BY id LIMIT {_BATCH}"
        ), {"last": last}).all()
        if not rows:
            return seen
        values = [{"v": b"\x00" + _utf8(value), "id": pk} for pk, value in rows
                  if value is not None]
        if values:
            seen = True
            bind.execute(update, values)
        last = rows[-1][0]


def _utf8(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    assert isinstance(value, (bytes, bytearray, memoryview))
    return bytes(value)


def downgrade() -> None:
    # Sealed values cannot be turned back into text without the key, which a migration never
    # holds (as in 0005).
    raise NotImplementedError("sealed credit, event details and failure texts cannot be turned "
                              "back into text columns")
