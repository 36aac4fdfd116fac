"""an index on payments (grassroots_org_id, state, created_at, id) for the inbox of a grassroots committee

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 13:50:00

A rejected payment waits in the inbox of the committee that collected it. Without this index the inbox found
those by walking the committee's whole history newest first (505 payments at a million, ten years in); with it,
each of the inbox's states is one seek of at most a page. Like every index migration here, it blocks writes to
payments while PostgreSQL builds the index: upgrade a large database in a quiet moment.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_grassroots_state', ['grassroots_org_id', 'state', 'created_at', 'id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_grassroots_state')
