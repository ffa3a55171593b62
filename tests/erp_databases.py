"""ERP databases for tests, on each backend syncctl supports.

SQLite is a file in the test's folder. PostgreSQL is a real server named by
SYNCCTL_TEST_POSTGRES_URL (.ci/postgres.sh starts one and prints it): each test
gets a schema of its own (new and empty, or from PostgresSchemas), reached through
search_path, so the unqualified names syncctl uses resolve there. Without the
variable the PostgreSQL tests skip, except in CI (CI=true), where they fail: CI
must prove both backends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from syncctl.erp import init_schema
from syncctl.erp.schema import VIEWS, metadata

ERP_BACKENDS = ("sqlite", "postgresql")
BACKEND_PROPERTY = "erp_backend"  # the user property a test's reports carry its backend in
POSTGRES_URL_VAR = "SYNCCTL_TEST_POSTGRES_URL"
_LOCK_TIMEOUT = "10s"  # a connection a test left inside a transaction fails it, never hangs it

# Everything a test could change in a schema's structure: relations, columns,
# constraints, view definitions, grants.
_STRUCTURE = text("""
SELECT md5(string_agg(item, ',' ORDER BY item)) FROM (
    SELECT relname || ':' || relkind::text || ':' || coalesce(relacl::text, '')
           || ':' || coalesce(pg_get_viewdef(oid), '') AS item
    FROM pg_class WHERE relnamespace = CAST(:schema AS regnamespace)
    UNION ALL
    SELECT relname || '.' || attname || ':' || format_type(atttypid, atttypmod) || ':' || attnotnull::text
    FROM pg_attribute JOIN pg_class ON pg_class.oid = attrelid
    WHERE relnamespace = CAST(:schema AS regnamespace) AND attnum > 0 AND NOT attisdropped
    UNION ALL
    SELECT conname || ':' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = CAST(:schema AS regnamespace)
) AS items
""")


def postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_URL_VAR)
    if url:
        return url
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{POSTGRES_URL_VAR} is not set: CI runs the PostgreSQL tests (see .ci/postgres.sh)")
    pytest.skip(f"{POSTGRES_URL_VAR} is not set: no PostgreSQL server to test against")


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'erp.db'}"


def with_search_path(url: str, schema: str) -> str:
    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


def _admin_engine(server_url: str, **options: Any) -> Engine:
    return create_engine(
        server_url,
        isolation_level="AUTOCOMMIT",
        connect_args={"options": f"-c lock_timeout={_LOCK_TIMEOUT}"},
        **options,
    )


def _new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@contextmanager
def fresh_postgres_schema(server_url: str) -> Iterator[str]:
    """A new schema with nothing in it, dropped afterwards."""
    name = _new_schema_name()
    admin = _admin_engine(server_url, poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        try:
            yield with_search_path(server_url, name)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
    finally:
        admin.dispose()


class PostgresSchemas:
    """Schemas holding the integration schema and no rows, one per test.

    Creating the schema's tables costs PostgreSQL a fifth of a second; emptying them,
    a few milliseconds. So a schema that a test leaves structurally as it found it is
    emptied (ids restarting at 1) and lent to the next test; any other is dropped.
    Autovacuum is off on them, so rows still come back in the order they went in.
    """

    def __init__(self, server_url: str) -> None:
        self._server_url = server_url
        self._admin = _admin_engine(server_url)  # pooled: one connection, kept for the session
        self._idle: list[str] = []
        self._structure: dict[str, str] = {}  # schema -> its structure when created
        self._emptying: dict[str, str] = {}  # schema -> the statements that empty it

    @contextmanager
    def lend(self) -> Iterator[str]:
        name = self._idle.pop() if self._idle else self._create()
        try:
            yield with_search_path(self._server_url, name)
        finally:
            self._take_back(name)

    def close(self) -> None:
        with self._admin.connect() as conn:
            for name in self._idle:
                conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        self._admin.dispose()

    def _create(self) -> str:
        name = _new_schema_name()
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        init_schema(with_search_path(self._server_url, name))
        tables = [table.name for table in reversed(metadata.sorted_tables) if table.name not in VIEWS]
        with self._admin.connect() as conn:
            conn.exec_driver_sql(";".join(f"ALTER TABLE {name}.{table} SET (autovacuum_enabled = off)" for table in tables))
            sequences = conn.scalars(
                text("SELECT relname FROM pg_class WHERE relkind = 'S' AND relnamespace = CAST(:schema AS regnamespace)"),
                {"schema": name},
            )
            self._emptying[name] = ";".join(
                [f"DELETE FROM {name}.{table}" for table in tables]
                + [f"ALTER SEQUENCE {name}.{sequence} RESTART" for sequence in sequences]
            )
            self._structure[name] = _structure(conn, name)
        return name

    def _take_back(self, name: str) -> None:
        with self._admin.connect() as conn:
            if _structure(conn, name) == self._structure[name]:
                conn.exec_driver_sql(self._emptying[name])
                self._idle.append(name)
            else:
                conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
                del self._structure[name], self._emptying[name]


def _structure(conn: Connection, schema: str) -> str:
    return conn.scalar(_STRUCTURE, {"schema": schema})
