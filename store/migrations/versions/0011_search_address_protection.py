"""person search rows carry the protection level of their address keys; strengt fortrolig keys are dropped

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 08:10:00.000000

Search and identification may use an address key only for a caller who may see that address (issue 13, "no
oracle"; store/search.py): the level is stored beside the keys, and a strengt fortrolig address, released to
nobody, is no longer in the index. The rows of the persons stored before are rewritten from their documents
(store.backfill.refresh_search_columns, with the layout it wrote: ``s2``, frozen in
store.backfill.search_s2); the covering birth date index gains the column (identification
scores it).
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_COVERING = ['birth_date', 'family_key', 'given_key', 'gender', 'postnummer', 'kommune', 'street_key', 'birth_year']


def upgrade() -> None:
    from store.backfill import refresh_search_columns, search_s2

    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address_protection', sa.String(length=20), nullable=True))
        batch_op.drop_index('ix_person_search_birth_date_covering')
    refresh_search_columns(op.get_bind(), ['kommune', 'postnummer', 'street_key', 'address_protection'],
                           search_s2)
    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.create_index('ix_person_search_birth_date_covering', [*_COVERING, 'address_protection'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('person_search', schema=None) as batch_op:
        batch_op.drop_index('ix_person_search_birth_date_covering')
        batch_op.drop_column('address_protection')
        batch_op.create_index('ix_person_search_birth_date_covering', _COVERING, unique=False)
