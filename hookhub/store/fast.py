"""The statements every callback runs, executed on the driver's cursor.

SQLAlchemy's execution layer (events, result objects, parameter processing per call) costs several
times what SQLite takes to run a small write. The hot writes are compiled here once per dialect and
set of columns, by SQLAlchemy itself, so the SQL and the conversion of each value (JSON, times,
bytes) are exactly what ``Connection.execute`` would send; each call then only converts its values
and runs the statement on the driver's cursor, in the same connection and transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Insert
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql import Executable


class _Prepared:
    def __init__(self, statement: Executable, dialect: Any, keys: Sequence[str]):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.compiled = compiled
        self.sql = compiled.string
        self.positions = compiled.positiontup  # None for named parameters (psycopg)
        self.processors = dict(compiled._bind_processors)
        self.returning = bool(compiled.effective_returning)

    def parameters(self, values: Mapping[str, Any]) -> Any:
        params = self.compiled.construct_params(dict(values))
        for name, process in self.processors.items():
            if name in params:
                params[name] = process(params[name])
        if self.positions is not None:
            return tuple(params[name] for name in self.positions)
        return params


_cache: dict[tuple[int, str, tuple[str, ...], bool], _Prepared] = {}
_cache_lock = threading.Lock()


def _prepared(conn: Connection, statement: Executable, keys: tuple[str, ...], many: bool = False) -> _Prepared:
    key = (id(statement), f"{conn.dialect.name}+{conn.dialect.driver}", keys, many)
    prepared = _cache.get(key)
    if prepared is None:
        # Rows inserted many at a time are not read back: no RETURNING of their keys.
        compiled = statement.inline() if many and isinstance(statement, Insert) else statement
        with _cache_lock:
            prepared = _cache.setdefault(key, _Prepared(compiled, conn.dialect, keys))
    return prepared


def execute(conn: Connection, statement: Executable, values: Mapping[str, Any]) -> Any:
    """Run a prebuilt INSERT or UPDATE (module-level, never rebuilt) with ``values``: the new row's
    primary key for an INSERT, else how many rows it changed."""
    prepared = _prepared(conn, statement, tuple(values))
    parameters = prepared.parameters(values)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(prepared.sql, parameters)
        if prepared.returning:
            return cursor.fetchone()[0]
        if prepared.compiled.isinsert:
            return cursor.lastrowid
        return cursor.rowcount
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, prepared.sql, parameters, exc) from exc
    finally:
        cursor.close()


def execute_many(conn: Connection, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run a prebuilt INSERT or UPDATE once per row; every row has the same keys."""
    if not rows:
        return
    prepared = _prepared(conn, statement, tuple(rows[0]), many=True)
    parameters = [prepared.parameters(row) for row in rows]
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.executemany(prepared.sql, parameters)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, prepared.sql, parameters, exc) from exc
    finally:
        cursor.close()


def scalar(conn: Connection, sql: str) -> Any:
    """The one value a parameterless query of plain SQL answers, read on the driver's cursor."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql)
        return cursor.fetchone()[0]
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, sql, (), exc) from exc
    finally:
        cursor.close()


def _wrapped(conn: Connection, sql: str, parameters: Any, error: Exception) -> Exception:
    """The driver's ``error`` as SQLAlchemy raises it (``IntegrityError``, ``OperationalError``...),
    which is what the store turns into a 503 or lets through as a bug."""
    return sa_exc.DBAPIError.instance(sql, parameters, error, conn.dialect.loaded_dbapi.Error,
                                      dialect=conn.dialect)
