"""parcels: deliveries watched for MALL (shop delivery dates, carrier tracking)

Revision ID: 0005
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = "0004"  # re-chained: one line of migrations
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('parcels',
    sa.Column('mall_order_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('tracking_number', sa.String(length=100), nullable=True),
    sa.Column('feed_carrier', sa.String(length=100), nullable=True),
    sa.Column('carrier', sa.String(length=32), nullable=True),
    sa.Column('carrier_by', sa.String(length=16), nullable=True),
    sa.Column('shop_delivered_at', sa.String(length=19), nullable=True),
    sa.Column('shop_first_attempt', sa.String(length=19), nullable=True),
    sa.Column('carrier_outcome', sa.String(length=16), nullable=True),
    sa.Column('carrier_delivered_at', sa.String(length=19), nullable=True),
    sa.Column('carrier_first_attempt', sa.String(length=19), nullable=True),
    sa.Column('carrier_date_only', sa.Boolean(), nullable=False),
    sa.Column('carrier_detail', sa.String(length=200), nullable=True),
    sa.Column('shipped_at', sa.String(length=19), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('polls', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('next_poll_at', sa.DateTime(), nullable=True),
    sa.Column('last_polled_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('refused', sa.Text(), nullable=True),
    sa.Column('change_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['mall_order_id'], ['orders.mall_order_id'], name=op.f('fk_parcels_mall_order_id_orders')),
    sa.PrimaryKeyConstraint('mall_order_id', name=op.f('pk_parcels'))
    )
    with op.batch_alter_table('parcels', schema=None) as batch_op:
        batch_op.create_index('ix_parcels_state_next', ['state', 'next_poll_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('parcels', schema=None) as batch_op:
        batch_op.drop_index('ix_parcels_state_next')
    op.drop_table('parcels')
