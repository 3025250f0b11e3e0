"""The store's schema, kept by Alembic migrations in ``hookhub/store/migrations``.

``upgrade`` brings any database hookhub created to the newest schema: an empty one, one at an
older revision, or one made before migrations existed (its tables match revision 0001; it is stamped
so and upgraded from there). All migrations of one upgrade commit together, and processes that
upgrade at once wait for each other. ``ensure_ready`` is what a server checks before it serves: it
creates the schema in an empty database, where nothing can be lost, and otherwise raises for any
schema but the newest, naming the command that fixes it (the server answers 503 meanwhile).
Upgrading a database that holds data is an operator's decision: ``hookhub db upgrade``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import SQLAlchemyError

from ..errors import SchemaError
from . import schema

if TYPE_CHECKING:
    from .store import Store

VERSION_TABLE = "hookhub_alembic_version"
BASELINE = "0001"  # the schema hookhub created before it had migrations
_BASELINE_TABLES = frozenset({"inbound_calls", "transactions", "events", "deliveries", "verifications",
                              "provider_memos"})
MIGRATION_LOCK_WAIT = 3600.0  # seconds an upgrade waits for locks before giving up
_UPGRADE_HINT = "run `hookhub db upgrade` (with the same HOOKHUB_DATABASE_URL) first"


@dataclasses.dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # the database's revision; None when it has none
    head: str  # the newest revision this hookhub knows
    unversioned: bool  # hookhub's tables from before migrations, at BASELINE
    clashes: tuple[str, ...]  # tables with hookhub's names that hookhub did not make

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def empty(self) -> bool:
        return self.current is None and not self.unversioned and not self.clashes

    @property
    def known(self) -> bool:
        """False when a newer hookhub migrated the database."""
        return self.current is None or self.current in _revisions()

    def describe(self) -> str:
        if self.clashes:
            return f"the database has tables hookhub did not create: {', '.join(self.clashes)}"
        if self.empty:
            return "the database is empty"
        if self.unversioned:
            return f"the database has hookhub's schema from before migrations (revision {BASELINE})"
        if not self.known:
            return f"the database is at revision {self.current}, which only a newer hookhub knows"
        return f"the database is at revision {self.current}" + (
            " (the newest)" if self.up_to_date else f"; this hookhub needs {self.head}")


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "hookhub.store:migrations")
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


@functools.cache
def _revisions() -> frozenset[str]:
    return frozenset(rev.revision for rev in _script().walk_revisions())


def head() -> str:
    return _script().get_current_head() or ""


def status_of(conn: Connection) -> SchemaStatus:
    tables = set(inspect(conn).get_table_names())
    current = None
    if VERSION_TABLE in tables:
        heads = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
        current = heads[0] if heads else None
    unversioned = current is None and _BASELINE_TABLES <= tables
    ours = set(schema.metadata.tables) | _BASELINE_TABLES
    clashes = tuple(sorted(tables & ours)) if current is None and not unversioned else ()
    return SchemaStatus(current, head(), unversioned, clashes)


def status(store: Store) -> SchemaStatus:
    with store._read() as conn:
        return status_of(conn)


def upgrade(store: Store, revision: str = "head") -> tuple[SchemaStatus, SchemaStatus]:
    """Upgrade the store's database to ``revision``; its status before and after.

    Runs on a connection of its own that waits for locks as long as a migration may take
    (another upgrader, or servers' short transactions), not the store's few seconds.
    """
    from .store import Store  # the store module imports this one

    patient = Store(store.engine.url.render_as_string(hide_password=False), timeout=MIGRATION_LOCK_WAIT,
                    pool_size=1)
    try:
        with patient._write() as conn:
            patient.serialize_schema_changes(conn)
            before = status_of(conn)
            if before.clashes or not before.known:
                raise SchemaError(f"cannot upgrade: {before.describe()}")
            config = _config(conn)
            try:
                if before.unversioned:
                    command.stamp(config, BASELINE)
                command.upgrade(config, revision)
            except SQLAlchemyError:
                raise  # the store's own handling: an outage is StoreUnavailable
            except Exception as exc:  # a migration refused, or no such revision: nothing was changed
                raise SchemaError(f"cannot upgrade to {revision}, nothing was changed: {exc}") from exc
            return before, status_of(conn)
    finally:
        patient.close()


def ensure_ready(store: Store) -> None:
    """Create the schema in an empty database; raise ``SchemaError`` for any other schema but the newest."""
    current = status(store)
    if current.up_to_date:
        return
    if current.empty:
        _before, after = upgrade(store)
        if after.up_to_date:
            return
        current = after
    raise SchemaError(f"{current.describe()}; {_UPGRADE_HINT}" if current.known and not current.clashes
                      else current.describe())
