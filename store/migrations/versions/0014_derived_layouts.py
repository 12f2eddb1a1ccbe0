"""record the layout of each derived per-person table in store_state

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 16:00:00.000000

The derived tables (store/derived.py) hold, after revisions 0001-0013, the layouts those revisions wrote:
person_identifier ``i1``, person_search ``s2`` (0011), person_brief ``b1`` (0006), person_current ``c1``
(0010). This revision records them (``layout.<table>`` in store_state), so that code with another layout
finds the drift: ``store.engine.migrate`` rebuilds a drifted table at head, ``pregbridge views rebuild --check``
reports it. The versions are written here as literals, never read from today's code.
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_LAYOUTS = {'person_identifier': 'i1', 'person_search': 's2', 'person_brief': 'b1', 'person_current': 'c1'}
_state = sa.table('store_state', sa.column('key', sa.String), sa.column('value', sa.String))


def upgrade() -> None:
    conn = op.get_bind()
    keys = [f'layout.{t}' for t in _LAYOUTS]
    conn.execute(sa.delete(_state).where(_state.c.key.in_(keys)))
    conn.execute(sa.insert(_state), [{'key': f'layout.{t}', 'value': v} for t, v in _LAYOUTS.items()])


def downgrade() -> None:
    op.get_bind().execute(sa.delete(_state).where(_state.c.key.like('layout.%')))
