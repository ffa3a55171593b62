"""The only module that writes syncctl's own SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path


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


class StateStore:
    """Opened once per process. WAL mode, file mode 0600, schema by named migrations.

    Thread-safe: push jobs record results from worker threads.
    """

    def __init__(self, path: Path, *, resend_after: timedelta = timedelta(hours=24)) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- cursors ---------------------------------------------------------------
    def cursor(self, channel: str, job: str) -> str | None:
        raise NotImplementedError

    def set_cursor(self, channel: str, job: str, value: str | None) -> None:
        raise NotImplementedError

    # -- pushed hashes -----------------------------------------------------------
    def pushed(self, channel: str, feature: str, keys: Sequence[str]) -> dict[str, Pushed]:
        """One query per call (callers pass chunks of up to ~500 keys)."""
        raise NotImplementedError

    def record_pushed(
        self, channel: str, feature: str, items: Iterable[tuple[str, str, str | None]], now: datetime
    ) -> None:
        """(key, hash, value) accepted by the channel at `now`; one transaction. `due_at` is
        now + resend_after minus a per-key share of up to a quarter of it, so items sent
        together come due over several runs."""
        raise NotImplementedError

    def forget_pushed(self, channel: str, feature: str | None = None) -> None:
        raise NotImplementedError

    # -- id links (the one Binder) ----------------------------------------------------
    def link(self, channel: str, kind: str, erp_id: str, channel_id: str, now: datetime) -> None:
        raise NotImplementedError

    def channel_ids(self, channel: str, kind: str, erp_ids: Sequence[str]) -> dict[str, str]:
        """erp_id -> channel_id for those linked."""
        raise NotImplementedError

    def erp_ids(self, channel: str, kind: str, channel_ids: Sequence[str]) -> dict[str, str]:
        """channel_id -> erp_id for those linked."""
        raise NotImplementedError

    # -- rotating tokens ----------------------------------------------------------
    def token(self, owner: str, name: str) -> str | None:
        raise NotImplementedError

    def set_token(self, owner: str, name: str, value: str, now: datetime) -> None:
        """Committed before the caller uses the token."""
        raise NotImplementedError

    # -- run log ------------------------------------------------------------------
    def start_run(self, channel: str, job: str, now: datetime) -> int:
        raise NotImplementedError

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
        raise NotImplementedError

    def record_failures(
        self, channel: str, job: str, failures: Iterable[tuple[str, str]], now: datetime
    ) -> dict[str, int]:
        """(key, error) of items that failed this run; returns key -> consecutive attempts.
        Errors are stored redacted."""
        raise NotImplementedError

    def clear_failures(self, channel: str, job: str, keys: Iterable[str]) -> None:
        raise NotImplementedError

    def failing(self, channel: str | None = None, job: str | None = None) -> list[Failing]:
        raise NotImplementedError

    def failing_keys(self, channel: str, job: str) -> set[str]:
        raise NotImplementedError

    def add_notice(self, channel: str, job: str, key: str, message: str, now: datetime) -> None:
        """Something a person must look at (e.g. an order cancelled after invoicing); kept once per key."""
        raise NotImplementedError

    def notices(self, channel: str | None = None) -> list[tuple[str, str, str, str, datetime]]:
        """(channel, job, key, message, created_at), newest first."""
        raise NotImplementedError

    def last_runs(self) -> list[RunRecord]:
        """The latest run of every (channel, job)."""
        raise NotImplementedError
