"""audit checkpoints: signed records of every audit chain's length and head hash

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-02 16:00:00

``flask --app duesflow audit-checkpoint`` keeps each checkpoint it signs here, besides printing it for an archive
outside the database's reach (docs/receipts.md, "Audit checkpoints").
"""
import sqlalchemy as sa
from alembic import op

import duesflow.models

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'audit_checkpoints',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', duesflow.models.UTCDateTime(), nullable=False),
        sa.Column('signer_fingerprint', sa.String(length=64), nullable=False),
        sa.Column('document', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints')),
    )


def downgrade():
    op.drop_table('audit_checkpoints')
