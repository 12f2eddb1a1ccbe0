"""Alembic environment: runs on the connection handed over by ``store.engine.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from store.schema import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` command line: -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///var/pregbridge.sqlite")
    with create_engine(url).begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
