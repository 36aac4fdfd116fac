"""an index on payments (state) for /metrics' payments by state

Revision ID: 0012
Revises: 0006
Create Date: 2026-12-02 15:40:00

/metrics reads the number of payments in each state at every scrape. With this index both engines answer the
grouped count from the index alone, the smallest structure that holds every payment's state (measured at a
million payments: docs/operations.md, "Metrics"). Like every index migration here, it blocks writes to payments
while PostgreSQL builds the index: upgrade a large database in a quiet moment.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_state', ['state'], unique=False)


def downgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_state')
