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

import sqlalchemy as sa
from alembic import op

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None

_COVERING = ['birth_year', 'given_key', 'gender', 'family_key', 'birth_date', 'postnummer', 'kommune', 'street_key',
             'address_protection']
# SQLite sorts an index build in temp_store, which the store's engine keeps in memory (and it maps the file): the
# build sorts in temporary files with a small cache and no map, as migration 0033 and the bulk load's deferred
# builds do (this revision's own copy of those settings; the connection's values are put back)
_BUILD = {'temp_store': 'FILE', 'cache_size': '-16384', 'mmap_size': '0'}


def _pragmas(conn: sa.Connection, values: dict[str, str]) -> dict[str, str]:
    """Set SQLite pragmas; returns the values they replaced. temp_store cannot change inside a transaction once
    the connection's temporary database is open (an earlier step used it): then it stays as it is."""
    before = {}
    for name, value in values.items():
        was = str(conn.exec_driver_sql(f'PRAGMA {name}').scalar())
        try:
            conn.exec_driver_sql(f'PRAGMA {name}={value}')
        except sa.exc.OperationalError:
            continue
        before[name] = was
    return before


def _build(name: str, columns: list[str]) -> None:
    conn = op.get_bind()
    before = _pragmas(conn, _BUILD) if conn.dialect.name == 'sqlite' else {}
    try:
        op.create_index(name, 'person_search', columns, unique=False)
    finally:
        _pragmas(conn, before)


def upgrade() -> None:
    op.drop_index('ix_person_search_birth_year_given_key', table_name='person_search')
    _build('ix_person_search_birth_year_given_covering', _COVERING)


def downgrade() -> None:
    op.drop_index('ix_person_search_birth_year_given_covering', table_name='person_search')
    _build('ix_person_search_birth_year_given_key', ['birth_year', 'given_key'])
