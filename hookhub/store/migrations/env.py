"""Alembic's entry point for hookhub's migrations.

hookhub runs them itself (``hookhub db upgrade``, or on first start into an empty database) on a
connection it has already opened, locked and begun a transaction on, so every migration of one
upgrade commits together or not at all.
"""

from alembic import context

from hookhub.store import schema
from hookhub.store.migrate import VERSION_TABLE

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=schema.metadata,
    version_table=VERSION_TABLE,  # its own name, so a database shared with the merchant's app is safe
)
with context.begin_transaction():
    context.run_migrations()
