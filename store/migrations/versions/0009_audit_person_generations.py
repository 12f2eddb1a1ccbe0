"""audit_person rows in generations of events, written in bulk on SQLite behind a watermark (store/audit_index.py)

The rows get their generation, the two single-column indexes (number; audit_id) become one (generation,
number, audit_id), and the watermark starts at the newest event: every event stored before this revision
has its rows. Downgrading writes the rows of the events past the watermark first: earlier revisions
expect them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 05:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

GENERATION = 10_000  # store.audit_index.GENERATION when this revision was written


def upgrade() -> None:
    with op.batch_alter_table('audit_person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gen', sa.Integer(), server_default='0', nullable=False))
    op.execute(f"UPDATE audit_person SET gen = (audit_id - 1) / {GENERATION}")
    with op.batch_alter_table('audit_person', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_person_gen_number_audit_id'), ['gen', 'number', 'audit_id'],
                              unique=False)
        batch_op.drop_index(batch_op.f('ix_audit_person_number'))
        batch_op.drop_index(batch_op.f('ix_audit_person_audit_id'))
    op.execute("INSERT INTO store_state (key, value) SELECT 'audit.person_indexed_upto',"
               " CAST(coalesce(max(id), 0) AS VARCHAR(200)) FROM audit_event")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        from store.audit_index import has_json1, index_events, newest_event

        if has_json1(bind):
            index_events(bind, newest_event(bind), whole=False)
    op.execute("DELETE FROM store_state WHERE key = 'audit.person_indexed_upto'")
    with op.batch_alter_table('audit_person', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_person_audit_id'), ['audit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_person_number'), ['number'], unique=False)
        batch_op.drop_index(batch_op.f('ix_audit_person_gen_number_audit_id'))
        batch_op.drop_column('gen')
