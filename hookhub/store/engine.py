"""Engines for the store, with the settings each database needs to be safe under several processes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

WRITE = "hookhub_write"  # execution option: this transaction will write


def make_engine(url: str, *, timeout: float) -> Engine:
    """An engine for ``url``; SQLite gets WAL, full fsync, foreign keys and writer serialization."""
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, timeout)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_engine(url: str, timeout: float) -> Engine:
    engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")  # an acknowledged call survives power loss
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # Writers take the write lock up front: every writer waits its turn (busy_timeout) instead
        # of failing when a read transaction tries to upgrade. This is also the per-transaction
        # lock on SQLite: one writer at a time across every process on the host.
        immediate = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
