"""Engines, transactions and the few SQL constructs that differ by backend.

Everything dialect-specific in the ERP adapter lives here: the driver a URL
means, SQLite connection tuning, which `insert` carries ON CONFLICT DO NOTHING,
and the collation strings are ordered by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Row,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from syncctl.errors import ErpError

IN_CHUNK = 500  # values per IN (...): well under every backend's bound-parameter limit
STREAM_CHUNK = 1000  # rows fetched per round trip when streaming

_WRITE = "syncctl_write"  # execution option: this transaction will write
# Users write plain postgresql:// URLs; SQLAlchemy would take that to mean psycopg2,
# and syncctl ships psycopg 3 (the `postgresql` extra).
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
_BUSY_TIMEOUT_MS = 30_000

_T = TypeVar("_T")


def create_erp_engine(url: str) -> Engine:
    try:
        engine = create_engine(engine_url(url))
    except ModuleNotFoundError as exc:
        raise ErpError(
            f"ERP database: its driver {exc.name} is not installed"
            " (for PostgreSQL: pip install 'syncctl[postgresql]')"
        ) from exc
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


def engine_url(url: str) -> URL:
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    return parsed if driver is None else parsed.set(drivername=driver)


def shown_url(url: str) -> str:
    """`url` fit to print: its password masked."""
    return make_url(url).render_as_string(hide_password=True)


def _tune_sqlite(engine: Engine) -> None:
    """WAL so readers never block the writer; a 30 s busy wait; foreign keys enforced
    as PostgreSQL would; and real transactions: the sqlite3 module's own BEGIN handling
    leaves SELECTs outside them, so SQLAlchemy emits BEGIN itself. A writing
    transaction starts with BEGIN IMMEDIATE: it takes the write lock up front and waits
    for it, instead of failing when a read later turns into a write."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL, far faster
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writing = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def absent_database(url: str) -> str | None:
    """Why `url` names no database yet, for the one case we can tell without creating
    it: a SQLite file that does not exist (connecting would create it empty)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if Path(parsed.database).exists():
        return None
    return f"database {parsed.database}: does not exist (create it with `syncctl erp init`)"


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A transaction to read in (one consistent snapshot), rolled back at the end.
    SQLite's is one already (WAL); PostgreSQL's default, READ COMMITTED, would let a
    read of several queries see the ERP's commits in between. Read-only, REPEATABLE
    READ never fails to serialize."""
    with erp_errors(), engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction committed at the end, rolled back on error."""
    with erp_errors(), engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def erp_errors() -> Iterator[None]:
    """Database errors become ErpError with the driver's message (no SQL, no values)."""
    try:
        yield
    except DBAPIError as exc:
        raise ErpError(f"ERP database: {exc.orig}") from exc


def insert_ignoring(conn: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """INSERT ... ON CONFLICT DO NOTHING on `table`'s one unique key, for the
    connection's backend. Its result's rowcount is how many rows went in: SQLAlchemy
    keeps rowcount only for UPDATE and DELETE unless asked, and psycopg forgets it
    once the cursor closes."""
    dialects = {"sqlite": sqlite, "postgresql": postgresql}
    dialect = dialects.get(conn.dialect.name)
    if dialect is None:
        raise ErpError(f"ERP database: {conn.dialect.name} is not supported (SQLite or PostgreSQL)")
    (key,) = (constraint for constraint in table.constraints if isinstance(constraint, UniqueConstraint))
    statement = dialect.insert(table).on_conflict_do_nothing(
        index_elements=[column.name for column in key.columns]
    )
    return statement.execution_options(preserve_rowcount=True)


class _Bytewise(FunctionElement[str]):
    type = String()  # so a comparison with it binds its operand as a string
    inherit_cache = True


def bytewise(column: ColumnElement[str]) -> ColumnElement[str]:
    """`column` to order by in code point order, as SQLite and Python's sorted() do.
    PostgreSQL would use the database's collation: pt_BR puts 'SKU_C' before 'SKU-A'."""
    return _Bytewise(column)


@compiles(_Bytewise)
def _plain(element: _Bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(column, **kw)


@compiles(_Bytewise, "postgresql")
def _collate_c(element: _Bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return f'{_plain(element, compiler, **kw)} COLLATE "C"'


def stream(conn: Connection, statement: Executable) -> Iterator[Row[Any]]:
    """The rows of `statement`, fetched STREAM_CHUNK at a time (server-side where the
    backend has cursors), so memory stays flat however many there are."""
    yield from conn.execute(statement, execution_options={"yield_per": STREAM_CHUNK})


def stream_as(conn: Connection, statement: Executable, build: Callable[..., _T]) -> Iterator[_T]:
    """`build(**row)` for each streamed row, by the statement's column labels. Rows are
    read as tuples: named access on a Row costs several times more, which shows at 1M rows."""
    result = conn.execute(statement, execution_options={"yield_per": STREAM_CHUNK})
    names = tuple(result.keys())
    for row in result:
        yield build(**dict(zip(names, row, strict=True)))


def chunked(values: Iterable[_T], size: int = IN_CHUNK) -> Iterator[list[_T]]:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk
