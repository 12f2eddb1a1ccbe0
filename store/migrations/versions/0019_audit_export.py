"""audit_export: the ranges ``pregbridge audit export`` wrote, and what ``audit purge`` deleted of them

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 16:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('audit_export',
    sa.Column('id', _ID, nullable=False),
    sa.Column('exported_at', sa.DateTime(), nullable=False),
    sa.Column('until', sa.DateTime(), nullable=False),
    sa.Column('first_id', _ID, nullable=True),
    sa.Column('last_id', _ID, nullable=True),
    sa.Column('records', sa.BigInteger(), nullable=False),
    sa.Column('file', sa.String(length=1000), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('purged_at', sa.DateTime(), nullable=True),
    sa.Column('purged_until', sa.DateTime(), nullable=True),
    sa.Column('purged_records', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_export'))
    )


def downgrade() -> None:
    op.drop_table('audit_export')
