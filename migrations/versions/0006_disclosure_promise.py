"""Credit consent, the disclosure (embargo) date and the keep-the-reporter-informed clock.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credit_consent", sa.String(length=20),
                                      server_default="unknown", nullable=False))
        batch_op.add_column(sa.Column("disclosure_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("update_due", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_cases_disclosure_date", ["disclosure_date"], unique=False)
        batch_op.create_index("ix_cases_update_due", ["update_due"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_update_due")
        batch_op.drop_index("ix_cases_disclosure_date")
        batch_op.drop_column("update_due")
        batch_op.drop_column("disclosure_date")
        batch_op.drop_column("credit_consent")
