"""HPR lookup and search columns, hpr_approval, and the KRK contact register (krk_contact, krk_coverage, krk_hpr)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00.000000

The HPR columns and approval rows are derived from the stored documents (store/registers.py); this
migration fills them for the records stored before, with the code that runs it. A stored record that
the current rules refuse keeps empty columns (it is still found by its number, as before).
"""

import json

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_KEY = sa.String(length=200).with_variant(sa.String(length=200, collation='C'), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('hpr_person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nin', sa.String(length=11), nullable=True))
        batch_op.add_column(sa.Column('family_key', _KEY, nullable=True))
        batch_op.add_column(sa.Column('given_key', _KEY, nullable=True))
        batch_op.add_column(sa.Column('birth_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('last_updated', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_hpr_person_nin'), ['nin'], unique=False)
        batch_op.create_index(batch_op.f('ix_hpr_person_last_updated'), ['last_updated'], unique=False)
        batch_op.create_index(batch_op.f('ix_hpr_person_family_key_given_key'), ['family_key', 'given_key'],
                              unique=False)
    op.create_table('hpr_approval',
    sa.Column('hpr_number', sa.String(length=12), nullable=False),
    sa.Column('approval_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('category', sa.String(length=10), nullable=False),
    sa.ForeignKeyConstraint(['hpr_number'], ['hpr_person.hpr_number'],
                            name=op.f('fk_hpr_approval_hpr_number_hpr_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('hpr_number', 'approval_id', name=op.f('pk_hpr_approval'))
    )
    with op.batch_alter_table('hpr_approval', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hpr_approval_approval_id'), ['approval_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_hpr_approval_category_hpr_number'), ['category', 'hpr_number'],
                              unique=False)
    op.create_table('krk_contact',
    sa.Column('area', sa.String(length=6), nullable=False),
    sa.Column('kommune', sa.String(length=4), nullable=False),
    sa.Column('bydel', sa.String(length=6), nullable=True),
    sa.Column('bydel_name', sa.String(length=100), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('issi', sa.String(length=8), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('area', name=op.f('pk_krk_contact'))
    )
    with op.batch_alter_table('krk_contact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_krk_contact_kommune'), ['kommune'], unique=False)
    op.create_table('krk_coverage',
    sa.Column('kommune', sa.String(length=4), nullable=False),
    sa.Column('area', sa.String(length=6), nullable=False),
    sa.ForeignKeyConstraint(['area'], ['krk_contact.area'], name=op.f('fk_krk_coverage_area_krk_contact'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('kommune', name=op.f('pk_krk_coverage'))
    )
    with op.batch_alter_table('krk_coverage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_krk_coverage_area'), ['area'], unique=False)
    op.create_table('krk_hpr',
    sa.Column('area', sa.String(length=6), nullable=False),
    sa.Column('hpr_number', sa.String(length=12), nullable=False),
    sa.ForeignKeyConstraint(['area'], ['krk_contact.area'], name=op.f('fk_krk_hpr_area_krk_contact'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('area', 'hpr_number', name=op.f('pk_krk_hpr'))
    )
    with op.batch_alter_table('krk_hpr', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_krk_hpr_hpr_number'), ['hpr_number'], unique=False)
    _fill_hpr(op.get_bind())


def _fill_hpr(conn: sa.Connection) -> None:
    from store import schema as s
    from store.errors import InvalidDocument
    from store.registers import register_rows

    last = ""
    while True:
        rows = conn.execute(sa.select(s.hpr_person.c.hpr_number, s.hpr_person.c.doc)
                            .where(s.hpr_person.c.hpr_number > last).order_by(s.hpr_person.c.hpr_number)
                            .limit(2000)).all()
        if not rows:
            return
        approvals = []
        for number, doc in rows:
            try:
                derived = register_rows("hpr", json.loads(doc) if isinstance(doc, str) else doc)
            except InvalidDocument:
                continue
            person = {k: v for k, v in derived[s.hpr_person][0].items() if k not in ("hpr_number", "doc")}
            conn.execute(sa.update(s.hpr_person).where(s.hpr_person.c.hpr_number == number).values(**person))
            approvals.extend(a for a in derived[s.hpr_approval] if a["hpr_number"] == number)
        if approvals:
            conn.execute(sa.insert(s.hpr_approval), approvals)
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_table('krk_hpr')
    op.drop_table('krk_coverage')
    op.drop_table('krk_contact')
    op.drop_table('hpr_approval')
    with op.batch_alter_table('hpr_person', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hpr_person_family_key_given_key'))
        batch_op.drop_index(batch_op.f('ix_hpr_person_last_updated'))
        batch_op.drop_index(batch_op.f('ix_hpr_person_nin'))
        batch_op.drop_column('last_updated')
        batch_op.drop_column('birth_date')
        batch_op.drop_column('given_key')
        batch_op.drop_column('family_key')
        batch_op.drop_column('nin')
