"""MALL Delivery labels and serial numbers: mdp_parcels, mdp_labels, mdp_serials

Revision ID: 0007
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = "0005"  # re-chained: one line of migrations
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mdp_parcels',
    sa.Column('mall_order_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('parcel_count', sa.Integer(), nullable=False),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('mall_order_id', name=op.f('pk_mdp_parcels'))
    )
    op.create_table('mdp_labels',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('mall_order_id', sa.BigInteger(), nullable=False),
    sa.Column('parcel_count', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('batch', sa.String(length=40), nullable=True),
    sa.Column('labels_type', sa.String(length=3), nullable=True),
    sa.Column('barcodes', sa.Text(), nullable=True),
    sa.Column('file', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mdp_labels'))
    )
    with op.batch_alter_table('mdp_labels', schema=None) as batch_op:
        batch_op.create_index('ix_mdp_labels_order', ['mall_order_id'], unique=False)
        batch_op.create_index('ix_mdp_labels_state', ['state'], unique=False)
    op.create_table('mdp_serials',
    sa.Column('mall_order_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('item_id', sa.String(length=100), nullable=False),
    sa.Column('wanted', sa.Text(), nullable=False),
    sa.Column('sent', sa.Text(), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('mall_order_id', 'item_id', name=op.f('pk_mdp_serials'))
    )


def downgrade() -> None:
    op.drop_table('mdp_serials')
    with op.batch_alter_table('mdp_labels', schema=None) as batch_op:
        batch_op.drop_index('ix_mdp_labels_state')
        batch_op.drop_index('ix_mdp_labels_order')
    op.drop_table('mdp_labels')
    op.drop_table('mdp_parcels')
