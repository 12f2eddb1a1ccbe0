"""auth throttle: growing delays per (address, account), account and address, and known addresses

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 08:00:00.000000

The table holds only short-lived counters (failed logins of the last day at most), so it is dropped and
made anew rather than converted: an upgrade forgets the failures counted so far, which only ever lets a
client try sooner (server/access/throttle.py describes the policy).
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('auth_throttle')
    op.create_table('auth_throttle',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure', sa.DateTime(), nullable=True),
    sa.Column('next_allowed', sa.DateTime(), nullable=True),
    sa.Column('trusted_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_auth_throttle'))
    )
    op.create_index(op.f('ix_auth_throttle_account'), 'auth_throttle', ['account'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_auth_throttle_account'), table_name='auth_throttle')
    op.drop_table('auth_throttle')
    op.create_table('auth_throttle',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_auth_throttle'))
    )
