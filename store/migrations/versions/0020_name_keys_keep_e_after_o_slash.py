"""name keys keep an e that follows ø (Løen → loeen, no longer lon as Lon)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 15:50:00.000000

store.normalize.name_key once turned ø into o and then ``oe`` into o, dropping the real e of ``Løen``
(issue 16). The search keys of the persons stored before are rewritten from their documents with the code
that runs this migration (store.backfill.refresh_search_columns); no column changes.
"""

from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from store.backfill import refresh_search_columns

    refresh_search_columns(op.get_bind(), ['family_key', 'given_key', 'street_key'])


def downgrade() -> None:
    pass  # the old keys were lossy; the new ones serve the old code as well as its own did
