"""postnummer + given name (+ birth year) reads an index range, not every person of the postnummer

Identification's two-error passes "postnummer + given" and "postnummer + given initial + birth year"
(store.matching) had no index starting with postnummer and given_key: at 1,000,000 persons SQLite walked the
postnummer's whole (postnummer, family_key) range and each row's table page, 1.6–1.7 ms per pass, three
quarters of a not-in-register record's SQL time. With (postnummer, given_key, birth_year) both passes are one
index range, the birth year filtered in the index.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-04 23:00:00.000000
"""

from alembic import op


revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_search_postnummer_given_key_birth_year'),
                              ['postnummer', 'given_key', 'birth_year'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_search_postnummer_given_key_birth_year'))
