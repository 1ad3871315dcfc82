"""per-item containment: typed failure outcomes on changes, inbox, hand-offs; confirms table

Revision ID: 0002
Revises: 0001

Only adds: nullable columns, or NOT NULL ones with a server default, so every row a first-release
ledger holds (pending changes, waiting inbox ids, open batches) stays as it was and keeps its place.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_class', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('refused', sa.Boolean(), nullable=True))
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=10), nullable=False, server_default='waiting'))
        batch_op.add_column(sa.Column('error_class', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('reason', sa.Text(), nullable=True))
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('error_class', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('resume_state', sa.String(length=10), nullable=True))
    op.create_table('confirms',
    sa.Column('mall_order_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('error_class', sa.String(length=80), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['mall_order_id'], ['orders.mall_order_id'],
                            name=op.f('fk_confirms_mall_order_id_orders')),
    sa.PrimaryKeyConstraint('mall_order_id', name=op.f('pk_confirms'))
    )
    with op.batch_alter_table('confirms', schema=None) as batch_op:
        batch_op.create_index('ix_confirms_state', ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('confirms', schema=None) as batch_op:
        batch_op.drop_index('ix_confirms_state')
    op.drop_table('confirms')
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        for name in ('resume_state', 'reason', 'last_error', 'error_class', 'next_attempt_at', 'attempts'):
            batch_op.drop_column(name)
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        for name in ('reason', 'error_class', 'state'):
            batch_op.drop_column(name)
    with op.batch_alter_table('changes', schema=None) as batch_op:
        for name in ('refused', 'outcome', 'error_class'):
            batch_op.drop_column(name)
