"""users.display_name: the person's name (姓名) shown in greetings, timelines, registers and lists

Revision ID: 0010
Revises: 0012
Create Date: 2026-12-02 15:45:00

Existing accounts get an empty name; pages then show the username until an admin sets one.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_name', sa.String(length=50), server_default='', nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('display_name')
