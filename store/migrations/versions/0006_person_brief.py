"""person brief: the current values a wash reads, one row per person, filled for the persons already stored

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 02:40:00.000000

The briefs are derived data (store/brief.py): this migration builds them from the stored documents with
the layout it wrote, ``b1`` (frozen in store.backfill.brief_b1; the rebuild at head brings it to the code's), in batches by person id (about a minute per million persons).
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from store.backfill import brief_b1, fill_per_person

    op.create_table('person_brief',
    sa.Column('person_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('brief', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_person_brief_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_person_brief'))
    )
    fill_per_person(op.get_bind(), 'person_brief', 'brief', brief_b1)


def downgrade() -> None:
    op.drop_table('person_brief')
