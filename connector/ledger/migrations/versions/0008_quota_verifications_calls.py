"""issue 17 (quota): confirmations to verify, MALL calls per day and kind

Revision ID: 0008
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0006"  # the integrator re-chains the migrations of this session
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verifications",
        sa.Column("mall_order_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account", sa.Text(), server_default="default", nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["mall_order_id"], ["orders.mall_order_id"],
                                name=op.f("fk_verifications_mall_order_id_orders")),
        sa.PrimaryKeyConstraint("mall_order_id", name=op.f("pk_verifications")),
    )
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.create_index("ix_verifications_confirmed_at", ["confirmed_at"], unique=False)
    op.create_table(
        "mall_calls",
        sa.Column("account", sa.Text(), server_default="default", nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account", "day", "kind", name=op.f("pk_mall_calls")),
    )


def downgrade() -> None:
    op.drop_table("mall_calls")
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_index("ix_verifications_confirmed_at")
    op.drop_table("verifications")
