"""The only module that writes syncctl's own SQL."""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlite_utils import Database

from syncctl.redact import redact
from syncctl.state.migrations import MIGRATIONS

_BUSY_TIMEOUT_S = 30  # another process (run-all vs a manual job) may hold the write lock briefly
_CHUNK = 500  # values per IN (...) list, well under SQLite's bound-parameter limit
_RESEND_SPREAD = 0.25  # share of resend_after by which an item may come due early
_UPSERT_PUSHED = (
    "INSERT INTO pushed (channel, feature, key, hash, sent_at, due_at, value) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (channel, feature, key) DO UPDATE SET "
    "hash = excluded.hash, sent_at = excluded.sent_at, due_at = excluded.due_at, value = excluded.value"
)

Row = dict[str, Any]
_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Pushed:
    """What the channel last accepted for one item."""

    hash: str
    sent_at: datetime
    due_at: datetime  # re-assert after this even if unchanged (resend_after, spread per key)
    value: str | None  # a small summary some jobs compare against (e.g. the selling price sent)


@dataclass(frozen=True)
class Failing:
    channel: str
    job: str
    key: str
    error: str
    attempts: int  # consecutive runs in which this item failed
    first_failed_at: datetime
    last_failed_at: datetime


@dataclass(frozen=True)
class RunRecord:
    id: int
    channel: str
    job: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    sent: int
    unchanged: int
    failed: int
    skipped: int
    message: str | None


def _to_text(moment: datetime) -> str:
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: the state file keeps aware UTC times only")
    return _utc_text(moment.astimezone(UTC))


def _utc_text(moment: datetime) -> str:
    # Fixed precision keeps the text sortable.
    return moment.isoformat(timespec="microseconds")


def _from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _optional_from_text(text: str | None) -> datetime | None:
    return None if text is None else _from_text(text)


def _due_share(channel: str, feature: str, key: str) -> float:
    """A fraction in [0, 1) fixed per item, so items sent together come due over several runs."""
    digest = hashlib.blake2b("\0".join((channel, feature, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _where_equal(columns: dict[str, str | None]) -> tuple[str | None, list[str]]:
    """A WHERE fragment matching the columns given a value; None columns are not filtered."""
    given = {name: value for name, value in columns.items() if value is not None}
    return " AND ".join(f"{name} = ?" for name in given) or None, list(given.values())


def _where_in(equal: dict[str, str], column: str, chunk: Sequence[str]) -> tuple[str, list[str]]:
    conditions = [f"{name} = ?" for name in equal]
    conditions.append(f"{column} IN ({', '.join('?' * len(chunk))})")
    return " AND ".join(conditions), [*equal.values(), *chunk]


def _open_private(path: Path) -> None:
    """The file holds tokens: create it owner-only before SQLite does, and narrow one (and its
    WAL sidecars, which SQLite creates with the file's mode) made wider by someone else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def _locked(
    method: Callable[Concatenate[StateStore, _P], _R],
) -> Callable[Concatenate[StateStore, _P], _R]:
    """One connection serves every thread, one operation at a time."""

    @functools.wraps(method)
    def locked(self: StateStore, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


def _pushed(row: Row) -> Pushed:
    return Pushed(
        hash=row["hash"],
        sent_at=_from_text(row["sent_at"]),
        due_at=_from_text(row["due_at"]),
        value=row["value"],
    )


def _failing(row: Row) -> Failing:
    return Failing(
        channel=row["channel"],
        job=row["job"],
        key=row["key"],
        error=row["error"],
        attempts=row["attempts"],
        first_failed_at=_from_text(row["first_failed_at"]),
        last_failed_at=_from_text(row["last_failed_at"]),
    )


def _run_record(row: Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        channel=row["channel"],
        job=row["job"],
        started_at=_from_text(row["started_at"]),
        finished_at=_optional_from_text(row["finished_at"]),
        outcome=row["outcome"],
        sent=row["sent"],
        unchanged=row["unchanged"],
        failed=row["failed"],
        skipped=row["skipped"],
        message=row["message"],
    )


class StateStore:
    """Opened once per process. WAL mode, file mode 0600, schema by named migrations.

    Thread-safe: push jobs record results from worker threads.
    """

    def __init__(self, path: Path, *, resend_after: timedelta = timedelta(hours=24)) -> None:
        self.path = path  # locks that guard what is kept here live beside it (paths.lock_dir)
        self._resend_after = resend_after
        self._lock = threading.Lock()
        _open_private(path)
        connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
        self._db = Database(connection)
        try:
            self._db.enable_wal()
            with self._transaction():
                MIGRATIONS.apply(self._db)
        except BaseException:
            self._db.close()
            raise

    @_locked
    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[Database]:
        """One write transaction. IMMEDIATE takes the write lock up front (waiting up to the busy
        timeout), so a read-then-write never fails half-way because another process wrote."""
        conn = self._db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _rows_in(
        self, table: str, equal: dict[str, str], column: str, values: Sequence[str]
    ) -> Iterator[Row]:
        """Rows matching `equal` whose `column` is one of `values`: one query per chunk."""
        for chunk in _chunks(values):
            where, args = _where_in(equal, column, chunk)
            yield from self._db.table(table).rows_where(where, args)

    # -- cursors ---------------------------------------------------------------
    @_locked
    def cursor(self, channel: str, job: str) -> str | None:
        rows = list(self._db.table("cursors").rows_where("channel = ? AND job = ?", [channel, job]))
        return rows[0]["value"] if rows else None

    @_locked
    def set_cursor(self, channel: str, job: str, value: str | None) -> None:
        updated_at = _to_text(datetime.now(UTC))
        row = {"channel": channel, "job": job, "value": value, "updated_at": updated_at}
        with self._transaction() as db:
            db.table("cursors").upsert(row, pk=("channel", "job"))

    # -- pushed hashes -----------------------------------------------------------
    @_locked
    def pushed(self, channel: str, feature: str, keys: Sequence[str]) -> dict[str, Pushed]:
        """One query per call (callers pass chunks of up to ~500 keys)."""
        rows = self._rows_in("pushed", {"channel": channel, "feature": feature}, "key", keys)
        return {row["key"]: _pushed(row) for row in rows}

    @_locked
    def record_pushed(
        self,
        channel: str,
        feature: str,
        items: Iterable[tuple[str, str, str | None]],
        now: datetime,
        *,
        clearing_failures_of: str | None = None,
    ) -> None:
        """(key, hash, value) accepted by the channel at `now`; one transaction, which also
        clears those keys' failures of the job `clearing_failures_of` when given. `due_at` is
        now + resend_after minus a per-key share of up to a quarter of it, so items sent
        together come due over several runs."""
        sent_at = _to_text(now)
        due = now.astimezone(UTC) + self._resend_after  # less each key's share, below
        spread = self._resend_after * _RESEND_SPREAD
        rows = [
            (channel, feature, key, hash_, sent_at, _utc_text(due - spread * _due_share(channel, feature, key)), value)
            for key, hash_, value in items
        ]
        with self._transaction() as db:
            # Plain executemany: sqlite-utils' upsert_all costs more than the write itself.
            db.conn.executemany(_UPSERT_PUSHED, rows)
            if clearing_failures_of is not None:
                self._delete_failures(channel, clearing_failures_of, [row[2] for row in rows])

    @_locked
    def forget_pushed(self, channel: str, feature: str | None = None) -> None:
        where, args = _where_equal({"channel": channel, "feature": feature})
        with self._transaction() as db:
            db.table("pushed").delete_where(where, args)

    @_locked
    def due_keys(
        self, channel: str, feature: str, now: datetime, limit: int, *, never_due: str | None = None
    ) -> list[str]:
        """Keys due for re-assertion at `now` (due_at <= now), at most `limit`, leaving out
        hashes that start with `never_due` (the caller's mark for "nothing to re-assert");
        one indexed query."""
        sql = "SELECT key FROM pushed WHERE channel = ? AND feature = ? AND due_at <= ?"
        args: list[Any] = [channel, feature, _to_text(now)]
        if never_due:
            sql += " AND substr(hash, 1, ?) <> ?"
            args += [len(never_due), never_due]
        cursor = self._db.execute(f"{sql} LIMIT ?", [*args, limit])
        return [key for (key,) in cursor.fetchall()]

    # -- id links (the one Binder) ----------------------------------------------------
    @_locked
    def link(self, channel: str, kind: str, erp_id: str, channel_id: str, now: datetime) -> None:
        row = {
            "channel": channel,
            "kind": kind,
            "erp_id": erp_id,
            "channel_id": channel_id,
            "synced_at": _to_text(now),
        }
        with self._transaction() as db:
            db.table("links").upsert(row, pk=("channel", "kind", "erp_id"))

    @_locked
    def channel_ids(self, channel: str, kind: str, erp_ids: Sequence[str]) -> dict[str, str]:
        """erp_id -> channel_id for those linked."""
        rows = self._rows_in("links", {"channel": channel, "kind": kind}, "erp_id", erp_ids)
        return {row["erp_id"]: row["channel_id"] for row in rows}

    @_locked
    def erp_ids(self, channel: str, kind: str, channel_ids: Sequence[str]) -> dict[str, str]:
        """channel_id -> erp_id for those linked."""
        rows = self._rows_in("links", {"channel": channel, "kind": kind}, "channel_id", channel_ids)
        return {row["channel_id"]: row["erp_id"] for row in rows}

    # -- rotating tokens ----------------------------------------------------------
    @_locked
    def token(self, owner: str, name: str) -> str | None:
        rows = list(self._db.table("tokens").rows_where("owner = ? AND name = ?", [owner, name]))
        return rows[0]["value"] if rows else None

    @_locked
    def set_token(self, owner: str, name: str, value: str, now: datetime) -> None:
        """Committed before the caller uses the token."""
        row = {"owner": owner, "name": name, "value": value, "updated_at": _to_text(now)}
        with self._transaction() as db:
            db.table("tokens").upsert(row, pk=("owner", "name"))

    # -- run log ------------------------------------------------------------------
    @_locked
    def start_run(self, channel: str, job: str, now: datetime) -> int:
        with self._transaction() as db:
            row = {"channel": channel, "job": job, "started_at": _to_text(now)}
            runs = db.table("runs").insert(row)
        return int(runs.last_pk)

    @_locked
    def finish_run(
        self,
        run_id: int,
        now: datetime,
        *,
        outcome: str,
        sent: int,
        unchanged: int,
        failed: int,
        skipped: int,
        message: str | None,
    ) -> None:
        updates = {
            "finished_at": _to_text(now),
            "outcome": outcome,
            "sent": sent,
            "unchanged": unchanged,
            "failed": failed,
            "skipped": skipped,
            "message": None if message is None else redact(message),
        }
        with self._transaction() as db:
            db.table("runs").update(run_id, updates)

    @_locked
    def record_failures(
        self, channel: str, job: str, failures: Iterable[tuple[str, str]], now: datetime
    ) -> dict[str, int]:
        """(key, error) of items that failed this run; returns key -> consecutive attempts.
        Errors are stored redacted."""
        errors = dict(failures)  # an item failing twice in one run counts once, last error kept
        failed_at = _to_text(now)
        with self._transaction() as db:
            scope = {"channel": channel, "job": job}
            rows_before = self._rows_in("failures", scope, "key", list(errors))
            earlier = {row["key"]: row for row in rows_before}
            rows = [
                {
                    **scope,
                    "key": key,
                    "error": redact(error),
                    "attempts": earlier[key]["attempts"] + 1 if key in earlier else 1,
                    "first_failed_at": earlier.get(key, {}).get("first_failed_at", failed_at),
                    "last_failed_at": failed_at,
                }
                for key, error in errors.items()
            ]
            db.table("failures").upsert_all(rows, pk=("channel", "job", "key"))
        return {row["key"]: row["attempts"] for row in rows}

    @_locked
    def clear_failures(self, channel: str, job: str, keys: Iterable[str]) -> None:
        with self._transaction():
            self._delete_failures(channel, job, list(keys))

    def _delete_failures(self, channel: str, job: str, keys: Sequence[str]) -> None:
        for chunk in _chunks(keys):
            where, args = _where_in({"channel": channel, "job": job}, "key", chunk)
            self._db.table("failures").delete_where(where, args)

    @_locked
    def failing(self, channel: str | None = None, job: str | None = None) -> list[Failing]:
        where, args = _where_equal({"channel": channel, "job": job})
        rows = self._db.table("failures").rows_where(where, args, order_by="channel, job, key")
        return [_failing(row) for row in rows]

    @_locked
    def failing_keys(self, channel: str, job: str) -> set[str]:
        rows = self._db.table("failures").rows_where(
            "channel = ? AND job = ?", [channel, job], select="key"
        )
        return {row["key"] for row in rows}

    @_locked
    def add_notice(self, channel: str, job: str, key: str, message: str, now: datetime) -> None:
        """Something a person must look at (e.g. an order cancelled after invoicing); kept once per key."""
        row = {
            "channel": channel,
            "job": job,
            "key": key,
            "message": redact(message),
            "created_at": _to_text(now),
        }
        with self._transaction() as db:
            db.table("notices").insert(row, ignore=True)

    @_locked
    def notices(self, channel: str | None = None) -> list[tuple[str, str, str, str, datetime]]:
        """(channel, job, key, message, created_at), newest first."""
        where, args = _where_equal({"channel": channel})
        rows = self._db.table("notices").rows_where(
            where, args, order_by="created_at DESC, channel, job, key"
        )
        return [
            (row["channel"], row["job"], row["key"], row["message"], _from_text(row["created_at"]))
            for row in rows
        ]

    @_locked
    def last_runs(self) -> list[RunRecord]:
        """The latest run of every (channel, job)."""
        rows = self._db.table("runs").rows_where(
            "id IN (SELECT max(id) FROM runs GROUP BY channel, job)", order_by="channel, job"
        )
        return [_run_record(row) for row in rows]
