"""given + family + birth year reads the index, not each row of the family's block

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 16:00:00.000000
"""

from alembic import op


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_search_birth_year_family_key'))
        batch_op.create_index(batch_op.f('ix_person_search_birth_year_family_key_given_key'),
                              ['birth_year', 'family_key', 'given_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_search_birth_year_family_key_given_key'))
        batch_op.create_index(batch_op.f('ix_person_search_birth_year_family_key'), ['birth_year', 'family_key'],
                              unique=False)
