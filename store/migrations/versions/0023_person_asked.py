"""person_asked: when each person was last asked about (read-through retention, issue 18)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 19:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('person_asked',
    sa.Column('person_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('asked_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_person_asked_person_id_person'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_person_asked'))
    )
    with op.batch_alter_table('person_asked', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_asked_asked_at'), ['asked_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('person_asked', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_asked_asked_at'))
    op.drop_table('person_asked')
