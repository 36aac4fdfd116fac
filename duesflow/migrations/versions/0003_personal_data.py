"""personal data: resident ID numbers and phones encrypted at rest beside keyed hashes; the access log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:30:00

The existing plaintext values are encrypted with the configured data key (DUESFLOW_DATA_KEY) on the way, and
the plaintext columns dropped; the downgrade decrypts them back.
"""
import sqlalchemy as sa
from alembic import op

import duesflow.models
from duesflow.personal_data import PERSONAL_FIELDS, data_keys

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _members(*names):
    return sa.table('members', sa.column('id', sa.Integer()), *(sa.column(name, sa.Text()) for name in names))


def upgrade():
    op.create_table('personal_data_views',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', duesflow.models.UTCDateTime(), nullable=False),
    sa.Column('viewer_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=20), nullable=False),
    sa.Column('shown_by', sa.String(length=300), nullable=False),
    sa.CheckConstraint("field IN ('id_number', 'phone')", name=op.f('ck_personal_data_views_field')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_personal_data_views_member_id_members')),
    sa.ForeignKeyConstraint(['viewer_id'], ['users.id'], name=op.f('fk_personal_data_views_viewer_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_personal_data_views'))
    )
    with op.batch_alter_table('personal_data_views', schema=None) as batch_op:
        batch_op.create_index('ix_personal_data_views_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_personal_data_views_member_created', ['member_id', 'created_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_personal_data_views_viewer_created', ['viewer_id', 'created_at', 'id'],
                              unique=False)

    for field in PERSONAL_FIELDS:
        op.add_column('members', sa.Column(f'{field}_encrypted', sa.Text(), nullable=True))
        op.add_column('members', sa.Column(f'{field}_hash', sa.String(length=64), nullable=True))
        op.create_index(op.f(f'ix_members_{field}_hash'), 'members', [f'{field}_hash'], unique=False)

    keys = data_keys()
    connection = op.get_bind()
    plain = _members(*PERSONAL_FIELDS)
    target = _members(*(f'{field}_{part}' for field in PERSONAL_FIELDS for part in ('encrypted', 'hash')))
    for row in connection.execute(sa.select(plain)).all():
        values = {}
        for field in PERSONAL_FIELDS:
            value = getattr(row, field)
            if value is not None:
                values |= {f'{field}_encrypted': keys.encrypt(value), f'{field}_hash': keys.blind_index(field, value)}
        if values:
            connection.execute(sa.update(target).where(target.c.id == row.id).values(**values))

    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): the columns carry no index or constraint, and a batch
    # copy of the table would have to drop "members", which the foreign keys of payments and users refer to.
    for field in PERSONAL_FIELDS:
        op.drop_column('members', field)


def downgrade():
    for field in PERSONAL_FIELDS:
        op.add_column('members', sa.Column(field, sa.String(length=20 if field == 'phone' else 18), nullable=True))
    keys = data_keys()
    connection = op.get_bind()
    stored = _members(*(f'{field}_encrypted' for field in PERSONAL_FIELDS))
    plain = _members(*PERSONAL_FIELDS)
    for row in connection.execute(sa.select(stored)).all():
        values = {field: keys.decrypt(getattr(row, f'{field}_encrypted')) for field in PERSONAL_FIELDS
                  if getattr(row, f'{field}_encrypted') is not None}
        if values:
            connection.execute(sa.update(plain).where(plain.c.id == row.id).values(**values))
    for field in PERSONAL_FIELDS:
        op.drop_index(op.f(f'ix_members_{field}_hash'), table_name='members')
        op.drop_column('members', f'{field}_hash')
        op.drop_column('members', f'{field}_encrypted')
    op.drop_table('personal_data_views')
