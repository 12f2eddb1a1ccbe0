"""person_given_word: one row per word of a person's given names, so that a given name is seeked, not filtered

A search by given + family name + birth year matches the given name as the prefix of *any* of the person's given
names (store/search.py), which no index on ``person_search.given_key`` serves: the given name was tested on each
entry of the (birth year, family) block, ~600 entries for the commonest family name of a year at 5.6 million
persons (SQLite VM p99 272 → 11,628 steps from 100k to 5.6M, docs/benchmarks.md). This table holds each distinct
word of ``given_key`` with the person's ``birth_year`` and ``family_key`` (persons with a birth year only), indexed
(birth_year, family_key, word, person_id) and (birth_year, word, family_key, person_id): the search enumerates the
distinct keys of the longer name asked and seeks the other name's range within each.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-05 02:00:00.000000

Filled from ``person_search`` (its name keys and birth year, which are what layout ``w1`` derives from the document:
store.derived.given_word_rows), in batches by person id, with this revision's own copy of the split: no document is
decoded. The indexes are built after the rows (one sorted build). Layout ``w1`` is recorded (store.derived).
"""

import sqlalchemy as sa
from alembic import op

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None

_BATCH = 20_000  # persons per batch: memory stays flat on a store of millions
_LAYOUT = 'w1'
_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_Key = sa.String(200).with_variant(sa.String(200, collation='C'), 'postgresql')


def _fill(conn: sa.Connection) -> int:
    search = sa.table('person_search', sa.column('person_id', sa.Integer), sa.column('birth_year', sa.Integer),
                      sa.column('family_key', sa.String), sa.column('given_key', sa.String))
    words = sa.table('person_given_word', sa.column('person_id', sa.Integer), sa.column('birth_year', sa.Integer),
                     sa.column('family_key', sa.String), sa.column('word', sa.String))
    query = (sa.select(search.c.person_id, search.c.birth_year, search.c.family_key, search.c.given_key)
             .where(search.c.person_id > sa.bindparam('last'), search.c.birth_year.is_not(None))
             .order_by(search.c.person_id).limit(_BATCH))
    last, count = 0, 0
    while True:
        rows = conn.execute(query, {'last': last}).all()
        if not rows:
            return count
        out = [{'person_id': pid, 'birth_year': year, 'family_key': family, 'word': w}
               for pid, year, family, given in rows for w in dict.fromkeys((given or '').split())]
        if out:
            conn.execute(sa.insert(words), out)
        count += len(out)
        last = rows[-1][0]


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


def upgrade() -> None:
    op.create_table('person_given_word',
    sa.Column('id', _Id, nullable=False),
    sa.Column('person_id', _Id, nullable=False),
    sa.Column('birth_year', sa.SmallInteger(), nullable=False),
    sa.Column('family_key', _Key, nullable=False),
    sa.Column('word', _Key, nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_person_given_word_person_id_person'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person_given_word'))
    )
    conn = op.get_bind()
    _fill(conn)
    # SQLite sorts an index build in temp_store; the store's engine keeps it in memory (and maps the file), which
    # made this upgrade peak at 853 MB on a 5.6M store: the builds sort in temporary files with a small cache and
    # no map, as the bulk load's deferred builds do (this revision's own copy of those settings)
    before = _pragmas(conn, _BUILD) if conn.dialect.name == 'sqlite' else {}
    try:
        op.create_index(op.f('ix_person_given_word_person_id'), 'person_given_word', ['person_id'], unique=False)
        op.create_index(op.f('ix_person_given_word_birth_year_family_key_word_person_id'), 'person_given_word',
                        ['birth_year', 'family_key', 'word', 'person_id'], unique=False)
        op.create_index(op.f('ix_person_given_word_birth_year_word_family_key_person_id'), 'person_given_word',
                        ['birth_year', 'word', 'family_key', 'person_id'], unique=False)
    finally:
        _pragmas(conn, before)
    state = sa.table('store_state', sa.column('key', sa.String), sa.column('value', sa.String))
    key = 'layout.person_given_word'
    conn.execute(sa.delete(state).where(state.c.key == key))
    conn.execute(sa.insert(state), [{'key': key, 'value': _LAYOUT}])


def downgrade() -> None:
    op.drop_table('person_given_word')
    op.get_bind().execute(sa.text("DELETE FROM store_state WHERE key = 'layout.person_given_word'"))
