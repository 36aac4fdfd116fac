"""receipt numbers past 999,999 in a year: receipts.number up to 16 characters, the sequence uncapped

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 05:50:00

A receipt number is YYYY-NNNNNN with a six-digit sequence (SPEC §5). A campaign year can issue more than
999,999 receipts (the surge bench confirms a million in one year), and the millionth number, 2026-1000000, has
twelve characters: the column of eleven refused it and central's confirmation failed (and behind it a check capped the
sequence at 999,999). The column now holds up to 16 characters, the check asks only for a sequence of 1 or more;
numbers issued before are unchanged. The downgrade fails while a sequence above 999,999 exists, as it should.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.alter_column('number', existing_type=sa.String(length=11), type_=sa.String(length=16),
                              existing_nullable=False)
        batch_op.drop_constraint(op.f('ck_receipts_sequence_range'), type_='check')
        batch_op.create_check_constraint(op.f('ck_receipts_sequence_range'), 'sequence >= 1')


def downgrade():
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_receipts_sequence_range'), type_='check')
        batch_op.create_check_constraint(op.f('ck_receipts_sequence_range'), 'sequence >= 1 AND sequence <= 999999')
        batch_op.alter_column('number', existing_type=sa.String(length=16), type_=sa.String(length=11),
                              existing_nullable=False)
