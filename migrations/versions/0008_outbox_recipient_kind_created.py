"""Index outbox rows by first recipient, kind and creation time: the per-sender receipt limit.

Counting one sender's receipts of the last day went through the (kind, created_at) index and
read every receipt of that day to compare its recipient: on a backlog, each count read
thousands of rows, and intake slowed with every receipt. The recipient-first index finds that
sender's rows alone. It replaces the index on the recipient by itself, which it starts with.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_recipient_kind_created",
                              ["first_recipient", "kind", "created_at"], unique=False)
        batch_op.drop_index("ix_outbox_first_recipient")


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_first_recipient", ["first_recipient"], unique=False)
        batch_op.drop_index("ix_outbox_recipient_kind_created")
