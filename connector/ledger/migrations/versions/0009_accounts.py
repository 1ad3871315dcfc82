"""several MALL accounts: an account column on every per-order table, order_accounts (issue 18)

Revision ID: 0009
Revises: 0006

An existing single-account ledger upgrades in place: every row gets account "default" (the single
[mall] client_id), so nothing pending changes meaning.
"""
from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("orders", "changes", "inbox", "actions", "events", "confirms", "parcels", "mdp_parcels", "mdp_labels",
          "mdp_serials", "audit_log")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("account", sa.Text(), nullable=False, server_default="default"))
            batch_op.create_index(f"ix_{table}_account", ["account"], unique=False)
    op.create_table(
        "order_accounts",
        sa.Column("mall_order_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("asked", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mall_order_id", name=op.f("pk_order_accounts")),
    )
    with op.batch_alter_table("order_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_order_accounts_account", ["account"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("order_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_order_accounts_account")
    op.drop_table("order_accounts")
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_account")
            batch_op.drop_column("account")
