"""name keys keep an e that follows ø (Løen → loeen, no longer lon as Lon)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 15:50:00.000000

store.normalize.name_key once turned ø into o and then ``oe`` into o, dropping the real e of ``Løen``
(issue 16). No column changes, and this step writes nothing: the new keys are person_search layout ``s3``
(store.derived), so ``store.engine.migrate`` at head rebuilds the table of a store recorded at ``s2`` from its
documents (an old migration never runs today's builders).
"""

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # the rebuild at head (store.derived, layout s3) rewrites the keys


def downgrade() -> None:
    pass  # the old keys were lossy; the new ones serve the old code as well as its own did
