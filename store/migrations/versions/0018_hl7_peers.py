"""hl7_peer: HL7 senders kept in the store (``pregbridge hl7 peers add|remove|list``)

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-04 16:00:00.000000

Running listeners read the table again every few seconds (server/hl7/peers.py), so a sender added or
removed takes effect without a restart.
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hl7_peer',
    sa.Column('peer', sa.String(length=200), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('peer', name=op.f('pk_hl7_peer'))
    )


def downgrade() -> None:
    op.drop_table('hl7_peer')
