"""person.doc compressed: stored format 1 (deflate with a preset dictionary, store/document.py) (issue 19)

Every document is rewritten from its JSON text (format 0) to format 1, in batches of 2,000 in this migration's
transaction; PostgreSQL's column becomes bytea first (the JSON text as its UTF-8 bytes, which the reader also
takes). Only the encoding changes, never the document: format 1 is frozen (store.document.deflate_1), so this
migration writes the same rows whenever it runs. A SQLite file keeps its size until ``VACUUM``; the pages freed
are reused by later writes (docs/store.md "Size").

Revision ID: 0031
Revises: 0023
Create Date: 2026-12-04 19:10:00.000000
"""

from collections.abc import Callable

import orjson
import sqlalchemy as sa
from alembic import op

from store.document import FORMAT_DEFLATE_1, decode_stored, deflate_1

revision = '0031'
down_revision = '0023'
branch_labels = None
depends_on = None

_BATCH = 2000
_person = sa.table("person", sa.column("id", sa.BigInteger), sa.column("doc"))  # doc untyped: values as given


def _rewrite(encode: Callable[[bytes | str], bytes | str | None]) -> None:
    """Rewrite every row's doc with ``encode`` (None: the row stays as it is), in batches by id."""
    conn = op.get_bind()
    upd = sa.update(_person).where(_person.c.id == sa.bindparam("b_id")).values(doc=sa.bindparam("b_doc"))
    last = -1
    while True:
        rows = conn.execute(sa.select(_person.c.id, _person.c.doc).where(_person.c.id > last)
                            .order_by(_person.c.id).limit(_BATCH)).all()
        if not rows:
            return
        changed = [{"b_id": pid, "b_doc": new} for pid, doc in rows if (new := encode(doc)) is not None]
        if changed:
            conn.execute(upd, changed)
        last = rows[-1][0]


def _to_format_1(doc: bytes | str) -> bytes | None:
    raw = doc.encode() if isinstance(doc, str) else bytes(doc)
    return None if raw[:1] == bytes([FORMAT_DEFLATE_1]) else deflate_1(raw)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE person ALTER COLUMN doc TYPE bytea USING convert_to(doc, 'UTF8')")
    _rewrite(_to_format_1)


def _to_json_bytes(doc: bytes | str) -> bytes:
    return orjson.dumps(decode_stored(doc))


def _to_json_text(doc: bytes | str) -> str | None:
    return None if isinstance(doc, str) else orjson.dumps(decode_stored(doc)).decode()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rewrite(_to_json_bytes)
        op.execute("ALTER TABLE person ALTER COLUMN doc TYPE text USING convert_from(doc, 'UTF8')")
    else:
        _rewrite(_to_json_text)
