"""identification's birth date block reads a covering index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 02:50:00.000000
"""

from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_search_birth_date_family_key'))
        batch_op.create_index('ix_person_search_birth_date_covering', ['birth_date', 'family_key', 'given_key', 'gender', 'postnummer', 'kommune', 'street_key', 'birth_year'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.drop_index('ix_person_search_birth_date_covering')
        batch_op.create_index(batch_op.f('ix_person_search_birth_date_family_key'), ['birth_date', 'family_key'], unique=False)
