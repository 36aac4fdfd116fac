"""audit_heads count their chain's payments by state, for /metrics

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-03 10:00:00

/metrics read the payments by state with a grouped count over every payment at each scrape, a cost that grew with
the history (half a second at a million payments). Now each audit chain head (one per grassroots org) counts its
chain's payments in each state, moved by the same UPDATE that moves the head at every event, and a scrape sums the
heads. The upgrade fills the counts from the payments with one grouped count (read from
ix_payments_grassroots_state alone) and one UPDATE per chain; the downgrade drops the columns.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0010'
branch_labels = None
depends_on = None

# workflow.State as this migration was written, in its order
STATES = ('recorded', 'in_review', 'at_central', 'receipted', 'returned', 'rejected', 'refunded', 'withdrawn')


def upgrade():
    with op.batch_alter_table('audit_heads', schema=None) as batch_op:
        for state in STATES:
            batch_op.add_column(sa.Column(f'payments_{state}', sa.Integer(), server_default=sa.text('0'),
                                          nullable=False))
    connection = op.get_bind()
    counts = {}  # chain -> state -> payments
    for grassroots_org_id, state, count in connection.execute(sa.text(
            'SELECT grassroots_org_id, state, count(*) FROM payments GROUP BY grassroots_org_id, state')):
        counts.setdefault(f'org-{grassroots_org_id}', dict.fromkeys(STATES, 0))[state] = count
    if counts:  # a chain whose head is missing stays without one: verify-audit reports it, as before
        assignments = ', '.join(f'payments_{state} = :{state}' for state in STATES)
        connection.execute(sa.text(f'UPDATE audit_heads SET {assignments} WHERE chain = :chain'),
                           [{'chain': chain, **by_state} for chain, by_state in counts.items()])


def downgrade():
    with op.batch_alter_table('audit_heads', schema=None) as batch_op:
        for state in STATES:
            batch_op.drop_column(f'payments_{state}')
