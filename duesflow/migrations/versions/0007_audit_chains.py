"""one audit hash chain per grassroots org: events get a chain and a position, each chain a head row

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:40:00

Until now every event was linked into one chain whose single head row every writer locked. Now an event belongs
to the chain of the grassroots org that collected its payment (``org-<id>``), has a position there from 1, and its
hash covers the chain's name; ``audit_heads`` holds each chain's length and newest hash. The upgrade splits the
existing trail into those chains in the order the events were written (by id) and rehashes every event; the
downgrade joins them back into one chain by id and rehashes them the old way. Both first check the trail they
are given: a trail that does not verify is not rehashed (that would launder the tampering) and the migration
stops. Rehashing reads and rewrites every event: on a large database, upgrade in a quiet moment.
"""
import hashlib
import json
from datetime import UTC

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

GENESIS_HASH = '0' * 64
BATCH = 5000

EVENT_COLUMNS = ('id', 'payment_id', 'action', 'from_state', 'to_state', 'from_org_id', 'to_org_id', 'actor_id',
                 'note', 'details', 'at', 'prev_hash', 'hash')


def _events_table(with_chains):
    columns = [sa.column(name) for name in EVENT_COLUMNS if name not in ('details', 'at')]
    columns += [sa.column('details', sa.JSON), sa.column('at', sa.DateTime)]
    if with_chains:
        columns += [sa.column('chain', sa.String), sa.column('position', sa.Integer)]
    return sa.table('events', *columns)


def _hash(prev_hash, row, chain):
    """audit.event_hash as it was when this migration was written: with the chain's name, or (None) without."""
    content = {
        'payment_id': row.payment_id, 'action': row.action, 'from_state': row.from_state, 'to_state': row.to_state,
        'from_org_id': row.from_org_id, 'to_org_id': row.to_org_id, 'actor_id': row.actor_id, 'note': row.note,
        'details': row.details, 'at': row.at.replace(tzinfo=UTC).isoformat(),
    }
    if chain is not None:
        content['chain'] = chain
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(',', ':'))
    return hashlib.sha256((prev_hash + text).encode()).hexdigest()


def _rows(connection, query, *order):
    """The rows of ``query`` in ``order`` (unique), a page at a time: the events are rewritten as they are read,
    which an open cursor on the same table would not survive on every driver."""
    after = None
    while True:
        page = query.order_by(*order).limit(BATCH)
        if after is not None:
            page = page.where(sa.tuple_(*order) > sa.tuple_(*after))
        rows = connection.execute(page).all()
        yield from rows
        if len(rows) < BATCH:
            return
        after = [getattr(rows[-1], column.name) for column in order]


def _rewrite(connection, events, changes):
    connection.execute(
        events.update().where(events.c.id == sa.bindparam('event_id')).values(
            {name: sa.bindparam(f'new_{name}') for name in changes[0] if name != 'event_id'}),
        [{('event_id' if name == 'event_id' else f'new_{name}'): value for name, value in change.items()}
         for change in changes],
    )


def upgrade():
    connection = op.get_bind()
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chain', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('position', sa.Integer(), nullable=True))
    heads_table = op.create_table(
        'audit_heads',
        sa.Column('chain', sa.String(length=24), nullable=False),
        sa.Column('length', sa.Integer(), nullable=False),
        sa.Column('last_hash', sa.String(length=64), nullable=False),
        sa.CheckConstraint('length >= 0', name=op.f('ck_audit_heads_length_nonnegative')),
        sa.PrimaryKeyConstraint('chain', name=op.f('pk_audit_heads')),
    )
    events = _events_table(with_chains=True)
    payments = sa.table('payments', sa.column('id'), sa.column('grassroots_org_id'))
    old_head = connection.execute(sa.text('SELECT last_hash FROM audit_head WHERE id = 1')).scalar()
    prev = GENESIS_HASH
    heads = {}  # chain -> [length, last hash]
    changes = []
    rows = _rows(connection, sa.select(events, payments.c.grassroots_org_id)
                 .join(payments, payments.c.id == events.c.payment_id), events.c.id)
    for row in rows:
        if row.prev_hash != prev or _hash(prev, row, None) != row.hash:
            raise RuntimeError(f'event {row.id} does not verify: run verify-audit on the old version first')
        prev = row.hash
        chain = f'org-{row.grassroots_org_id}'
        head = heads.setdefault(chain, [0, GENESIS_HASH])
        new_hash = _hash(head[1], row, chain)
        changes.append({'event_id': row.id, 'chain': chain, 'position': head[0] + 1, 'prev_hash': head[1],
                        'hash': new_hash})
        head[0], head[1] = head[0] + 1, new_hash
        if len(changes) >= BATCH:
            _rewrite(connection, events, changes)
            changes = []
    if changes:
        _rewrite(connection, events, changes)
    if old_head not in (None, prev):
        raise RuntimeError('the newest events of the audit chain are missing: run verify-audit on the old version')
    if heads:
        op.bulk_insert(heads_table, [{'chain': chain, 'length': length, 'last_hash': last_hash}
                                     for chain, (length, last_hash) in heads.items()])
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('chain', existing_type=sa.String(length=24), nullable=False)
        batch_op.alter_column('position', existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint('uq_events_chain_position', ['chain', 'position'])
        batch_op.create_check_constraint(op.f('ck_events_position_positive'), 'position >= 1')
    op.drop_table('audit_head')


def downgrade():
    connection = op.get_bind()
    events = _events_table(with_chains=True)
    walks = {}  # chain -> [length, last hash]
    for row in _rows(connection, sa.select(events), events.c.chain, events.c.position):
        length, last_hash = walks.setdefault(row.chain, [0, GENESIS_HASH])
        if row.position != length + 1 or row.prev_hash != last_hash or _hash(last_hash, row, row.chain) != row.hash:
            raise RuntimeError(f'event {row.id} does not verify: run verify-audit first')
        walks[row.chain] = [row.position, row.hash]
    heads = {chain: [length, last_hash] for chain, length, last_hash in connection.execute(
        sa.text('SELECT chain, length, last_hash FROM audit_heads'))}
    if heads != {chain: walk for chain, walk in walks.items()}:
        raise RuntimeError('the audit heads do not match their chains: run verify-audit first')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_events_position_positive'), type_='check')
        batch_op.drop_constraint('uq_events_chain_position', type_='unique')
    head_table = op.create_table(
        'audit_head',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('last_hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head')),
    )
    prev = GENESIS_HASH
    changes = []
    for row in _rows(connection, sa.select(events), events.c.id):
        new_hash = _hash(prev, row, None)
        changes.append({'event_id': row.id, 'prev_hash': prev, 'hash': new_hash})
        prev = new_hash
        if len(changes) >= BATCH:
            _rewrite(connection, events, changes)
            changes = []
    if changes:
        _rewrite(connection, events, changes)
    op.bulk_insert(head_table, [{'id': 1, 'last_hash': prev}])
    op.drop_table('audit_heads')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('position')
        batch_op.drop_column('chain')
