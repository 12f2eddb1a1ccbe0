"""person current view: the current values an HL7 PID shows, one row per person, filled for the persons stored

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 07:20:00.000000

The views are derived data (store/current.py): this migration builds them from the stored documents with
the layout it wrote, ``c1`` (frozen in store.backfill.current_c1; the rebuild at head brings it to the
code's), in batches by person id (about a minute and a half per million
persons on the 2-vCPU development machine).
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from store.backfill import current_c1, fill_per_person

    op.create_table('person_current',
    sa.Column('person_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('current', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_person_current_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_person_current'))
    )
    fill_per_person(op.get_bind(), 'person_current', 'current', current_c1)


def downgrade() -> None:
    op.drop_table('person_current')
