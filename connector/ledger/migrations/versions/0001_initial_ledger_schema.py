"""initial ledger schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 04:53:00.394298
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('actions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('mall_order_id', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.Column('done_note', sa.Text(), nullable=True),
    sa.Column('alerted_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actions')),
    sa.UniqueConstraint('key', name=op.f('uq_actions_key'))
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index('ix_actions_done', ['done_at'], unique=False)

    op.create_table('alerts',
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('first_at', sa.DateTime(), nullable=False),
    sa.Column('last_sent_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_alerts'))
    )
    op.create_table('events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('mall_order_id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_order', ['mall_order_id'], unique=False)

    op.create_table('handoffs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoffs')),
    sa.UniqueConstraint('name', name=op.f('uq_handoffs_name'))
    )
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.create_index('ix_handoffs_state', ['state'], unique=False)

    op.create_table('inbox',
    sa.Column('mall_order_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('mall_order_id', name=op.f('pk_inbox'))
    )
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_next', ['next_attempt_at'], unique=False)

    op.create_table('kv',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_kv'))
    )
    op.create_table('orders',
    sa.Column('mall_order_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('shop_order_id', sa.String(length=64), nullable=True),
    sa.Column('mall_status', sa.String(length=16), nullable=True),
    sa.Column('mall_confirmed', sa.Boolean(), nullable=True),
    sa.Column('mall_read_at', sa.DateTime(), nullable=True),
    sa.Column('mdp', sa.Boolean(), nullable=False),
    sa.Column('test', sa.Boolean(), nullable=False),
    sa.Column('purchase_id', sa.BigInteger(), nullable=True),
    sa.Column('customer', sa.String(length=200), nullable=True),
    sa.Column('delivery_method', sa.String(length=64), nullable=True),
    sa.Column('branch_id', sa.BigInteger(), nullable=True),
    sa.Column('ship_date', sa.String(length=10), nullable=True),
    sa.Column('mall_delivered_at', sa.String(length=19), nullable=True),
    sa.Column('snapshot', sa.Text(), nullable=True),
    sa.Column('shop_status', sa.String(length=100), nullable=True),
    sa.Column('shop_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('shop_seen_at', sa.DateTime(), nullable=True),
    sa.Column('shop_tracking_number', sa.String(length=100), nullable=True),
    sa.Column('shop_tracking_url', sa.String(length=500), nullable=True),
    sa.Column('shop_carrier', sa.String(length=100), nullable=True),
    sa.Column('shop_location', sa.String(length=100), nullable=True),
    sa.Column('handed_at', sa.DateTime(), nullable=True),
    sa.Column('handed_status', sa.String(length=16), nullable=True),
    sa.Column('handed_branch_id', sa.BigInteger(), nullable=True),
    sa.Column('needs_confirm', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('mall_order_id', name=op.f('pk_orders'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_mall_delivered_at', ['mall_delivered_at'], unique=False)
        batch_op.create_index('ix_orders_mall_status', ['mall_status'], unique=False)
        batch_op.create_index('ix_orders_needs_confirm', ['needs_confirm'], unique=False)

    op.create_table('changes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('mall_order_id', sa.BigInteger(), nullable=False),
    sa.Column('origin', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('shop_status', sa.String(length=100), nullable=True),
    sa.Column('target_status', sa.String(length=16), nullable=True),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('handoff_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['handoff_id'], ['handoffs.id'], name=op.f('fk_changes_handoff_id_handoffs')),
    sa.ForeignKeyConstraint(['mall_order_id'], ['orders.mall_order_id'], name=op.f('fk_changes_mall_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_changes')),
    sa.UniqueConstraint('key', name=op.f('uq_changes_key'))
    )
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.create_index('ix_changes_order', ['mall_order_id'], unique=False)
        batch_op.create_index('ix_changes_state_next', ['state', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_index('ix_changes_state_next')
        batch_op.drop_index('ix_changes_order')

    op.drop_table('changes')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_needs_confirm')
        batch_op.drop_index('ix_orders_mall_status')
        batch_op.drop_index('ix_orders_mall_delivered_at')

    op.drop_table('orders')
    op.drop_table('kv')
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_next')

    op.drop_table('inbox')
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_index('ix_handoffs_state')

    op.drop_table('handoffs')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_order')

    op.drop_table('events')
    op.drop_table('alerts')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index('ix_actions_done')

    op.drop_table('actions')
