"""Engines for the store, with the settings each database needs to be safe under several processes."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.engine import URL, Engine, make_url

from ..errors import ConfigError

WRITE = "hookhub_write"  # execution option: this transaction will write
LOCK_WAIT = "hookhub_lock_wait"  # execution option: seconds to wait for SQLite's write lock, if not the timeout

# A plain ``postgresql://`` URL means psycopg 3, the driver hookhub installs.
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg"}


def database_url(url: str | URL) -> URL:
    """``url`` with hookhub's driver filled in where the URL names none."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"HOOKHUB_DATABASE_URL is not a database URL: {exc}") from None
    if "+" not in parsed.drivername and parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    return parsed


def make_engine(url: str | URL, *, timeout: float, pool_size: int = 5) -> Engine:
    """An engine for ``url``. SQLite gets WAL, full fsync, foreign keys and writer serialization;
    PostgreSQL gets a bounded pool and waits for locks no longer than ``timeout``."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, timeout)
    if parsed.get_backend_name() == "postgresql":
        return _postgresql_engine(parsed, timeout, pool_size)
    # Other databases would run, but with their own limits (binary and text sizes, time precision,
    # transactional DDL) that the store has not been proven against: refuse rather than surprise.
    raise ConfigError(f"HOOKHUB_DATABASE_URL: {parsed.get_backend_name()} is not supported; use sqlite or postgresql")


def _sqlite_engine(url: URL, timeout: float) -> Engine:
    engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False})

    @event.listens_for(engine, "do_connect")
    def _create_private(_dialect: Any, _record: Any, _cargs: Any, _params: Any) -> None:
        _create_private_file(url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Every statement waits this long for a lock; writers wait in ``_take_write_lock`` instead.
        cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")  # an acknowledged call survives power loss
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # Writers take the write lock up front: every writer waits its turn instead of failing
        # when a read transaction tries to upgrade. This is also the per-transaction lock on
        # SQLite: one writer at a time across every process on the host.
        if not connection.get_execution_options().get(WRITE, False):
            connection.exec_driver_sql("BEGIN")
            return
        dbapi_connection = connection.connection.dbapi_connection
        wait = connection.get_execution_options().get(LOCK_WAIT)
        try:
            if not _take_write_lock(dbapi_connection, timeout if wait is None else min(wait, timeout)):
                # The last try, failing at once, raises the error the store turns into a 503.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
        finally:
            dbapi_connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")

    return engine


def _create_private_file(url: URL) -> None:
    """Create a SQLite store that does not exist yet as an empty file only its owner can read.

    The store holds buyers' data. SQLite would create it with the umask's mode (often world-readable)
    and gives its -wal and -shm files the database file's own mode, so the mode must be right before
    SQLite first opens it. An existing file keeps the mode its owner gave it.
    """
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:") or url.query.get("uri"):
        return  # in memory, or a URI whose options SQLite reads itself
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        pass  # it exists; or SQLite's own open fails next, with its own message


def _take_write_lock(dbapi_connection: Any, timeout: float) -> bool:
    """BEGIN IMMEDIATE, retried until ``timeout`` with SQLite's busy timeout off; False if it failed.

    SQLite's own busy handler sleeps 1, 2, 5, 10... up to 100 ms between tries, so under a steady
    stream of short write transactions from several processes a waiting writer oversleeps each
    release many times over. Retrying here starts at 50 microseconds and never sleeps longer than
    2 ms, so a writer gets the lock about as soon as it is free.
    """
    deadline = time.monotonic() + timeout
    delay = 0.00005
    dbapi_connection.execute("PRAGMA busy_timeout = 0")  # the caller sets it back
    while True:
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                return False
        time.sleep(delay)
        delay = min(delay * 2, 0.002)


def _postgresql_engine(url: URL, timeout: float, pool_size: int) -> Engine:
    connect_args = {
        "connect_timeout": max(1, round(min(timeout, 30))),
        # A network that drops everything (a partition, a host powered off) fails a query once
        # what it sent stays unacknowledged this long, and idle connections are probed, so a
        # request gets its 503 instead of hanging until the kernel gives up many minutes later.
        "tcp_user_timeout": max(10_000, int(min(timeout, 30) * 2000)),
        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
        "application_name": "hookhub",
    }
    try:
        # Every transaction reads what others committed before it took its locks: the
        # per-transaction lock depends on it, whatever the server's or role's default is.
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size,
                               pool_timeout=timeout, connect_args=connect_args, isolation_level="READ COMMITTED")
    except (ImportError, NoSuchModuleError) as exc:
        raise ConfigError(f"HOOKHUB_DATABASE_URL names a driver that is not installed: {exc}") from None
    lock_timeout = max(1, int(timeout * 1000))

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            # Waiting for a row lock longer than the store timeout fails the statement, so the
            # caller answers 503 and the provider retries, as with SQLite's busy timeout.
            cursor.execute(f"SET lock_timeout = {lock_timeout}")
            # The server's side of a host that vanished: its sessions are probed and ended
            # within about a minute. A transaction left open by a process that froze or died
            # mid-statement is ended sooner, releasing its row locks: hookhub never waits on
            # anything outside the database inside a transaction, and others skip locked rows, so
            # those locks would otherwise keep its claimed work from the others past its heartbeat.
            cursor.execute("SET tcp_keepalives_idle = 30")
            cursor.execute("SET tcp_keepalives_interval = 10")
            cursor.execute("SET tcp_keepalives_count = 3")
            cursor.execute(f"SET idle_in_transaction_session_timeout = {max(15_000, lock_timeout * 3)}")
        dbapi_connection.commit()

    return engine
