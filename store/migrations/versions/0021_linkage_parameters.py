"""identification's Fellegi–Sunter parameters are stored with the store

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 16:10:00.000000

One row per `pregbridge identify estimate` (store/linkage/params.py): the m and u probabilities of each
comparison level, the term frequencies of names and postnummer, the prior. A store without a row
identifies with the built-in defaults.
"""

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'linkage_parameters',
        sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('estimated_at', sa.DateTime(), nullable=False),
        sa.Column('persons', sa.BigInteger(), nullable=False),
        sa.Column('params', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('version', name=op.f('pk_linkage_parameters')),
    )


def downgrade() -> None:
    op.drop_table('linkage_parameters')
