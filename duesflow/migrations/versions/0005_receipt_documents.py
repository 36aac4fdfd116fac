"""receipt documents: each receipt's PDF as last rendered, so that a download sends stored bytes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:30:00

Rendering a receipt took two thirds of a download's time (BENCHMARKS.md). The table starts empty: each
receipt's document is stored at its first download after this migration.
"""
import sqlalchemy as sa
from alembic import op

import duesflow.models

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'receipt_documents',
        sa.Column('receipt_id', sa.Integer(), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('pdf', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', duesflow.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['receipt_id'], ['receipts.id'],
                                name=op.f('fk_receipt_documents_receipt_id_receipts')),
        sa.PrimaryKeyConstraint('receipt_id', name=op.f('pk_receipt_documents')),
    )


def downgrade():
    op.drop_table('receipt_documents')
