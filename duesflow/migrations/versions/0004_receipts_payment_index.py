"""an index on receipts.payment_id for loading the receipts of a page of payments

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 08:10:00

The partial unique index on live receipts cannot serve ``WHERE payment_id IN (...)`` over every version, so
every payment list, detail and receipt download scanned the whole receipts table (180 ms at a million).
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.create_index('ix_receipts_payment', ['payment_id', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_receipts_payment')
