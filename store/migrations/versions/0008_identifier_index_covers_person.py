"""a lookup by number reads the person id from the index

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 03:05:00.000000
"""

from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('person_identifier', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_identifier_number_person_id'), ['number', 'person_id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_person_identifier_number'))


def downgrade() -> None:
    with op.batch_alter_table('person_identifier', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_identifier_number'), ['number'], unique=False)
        batch_op.drop_index(batch_op.f('ix_person_identifier_number_person_id'))
