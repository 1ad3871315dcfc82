"""alerts digest (urgent, last_seen_at) and self-closing needs-action items (closes_on, closed_by)

Revision ID: 0004
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_alerts_state_last_sent_at", ["state", "last_sent_at"])
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("closes_on", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("closed_by", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("closed_by")
        batch.drop_column("closes_on")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_index("ix_alerts_state_last_sent_at")
        batch.drop_column("last_seen_at")
        batch.drop_column("urgent")
