"""(birth_year, given_key) becomes a covering index for identification's "birth year + given" pass

That pass (store.matching) reads the namesakes of the record's birth year and gender that have one more thing of
the record's (family initial, postnummer, kommune, street or a near birth date). Its index (birth_year, given_key)
held none of those columns, so SQLite read each namesake's table row to test them: ~62 rows a not-in-register
record at 1,000,000 persons, to keep ~7 (~0.19 ms of SQL, docs/filematch.md, session 9). The index now also
holds gender, family_key, birth_date, postnummer, kommune, street_key and address_protection (every column the
pass tests or scores; person_id is the rowid on SQLite): the pass is one range of index pages. It replaces the
two-column index, whose seeks it serves with the same leading columns.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-05 03:00:00.000000
"""

from alembic import op

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None

_COVERING = ['birth_year', 'given_key', 'gender', 'family_key', 'birth_date', 'postnummer', 'kommune', 'street_key',
             'address_protection']


def upgrade() -> None:
    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_search_birth_year_given_key'))
        batch_op.create_index('ix_person_search_birth_year_given_covering', _COVERING, unique=False)


def downgrade() -> None:
    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.drop_index('ix_person_search_birth_year_given_covering')
        batch_op.create_index(batch_op.f('ix_person_search_birth_year_given_key'), ['birth_year', 'given_key'],
                              unique=False)
