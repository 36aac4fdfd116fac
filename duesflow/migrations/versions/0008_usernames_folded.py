"""usernames unique after NFKC and case folding: users.username_folded, unique

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02 15:40:00

``DEMO-ADMIN`` beside ``demo-admin`` read alike in every trail (issue 14, finding 7). The new column holds the
folded username and is unique. Accounts that already clash are never merged (each has its own history,
tokens and trail): the upgrade stops, names every clashing group, and changes nothing; rename all but one of
each group (``PATCH`` cannot rename, so in the database or by recreating the account) and upgrade again.
"""
import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _fold(username: str) -> str:
    # duesflow.identity.fold_username as of this revision, copied so that the migration never changes with it
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


class UsernameClash(RuntimeError):
    """Accounts whose usernames are one after folding: the upgrade refuses rather than merge them."""


def upgrade():
    connection = op.get_bind()
    users = connection.execute(sa.text("SELECT id, username FROM users ORDER BY id")).all()
    groups: dict[str, list[tuple[int, str]]] = {}
    for user_id, username in users:
        groups.setdefault(_fold(username), []).append((user_id, username))
    clashes = [group for group in groups.values() if len(group) > 1]
    if clashes:
        named = "; ".join(", ".join(f"{username!r} (id {user_id})" for user_id, username in group)
                          for group in clashes)
        raise UsernameClash(
            "usernames must be unique ignoring letter case and compatibility forms, and these accounts clash: "
            f"{named}. Rename all but one account of each group, then run the upgrade again; nothing was changed.")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('username_folded', sa.String(length=64), nullable=True))
    users_table = sa.table('users', sa.column('id', sa.Integer), sa.column('username_folded', sa.String))
    for folded, [(user_id, _username)] in groups.items():
        connection.execute(users_table.update().where(users_table.c.id == user_id).values(username_folded=folded))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('username_folded', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_users_username_folded'), ['username_folded'])


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_username_folded'), type_='unique')
        batch_op.drop_column('username_folded')
