"""The state file's schema, as named migrations applied once each, in order.

A schema change is a new decorated function below the others; an applied one is never edited.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("syncctl-state")
"""Applied in order of definition, each once, recorded in sqlite-utils' _sqlite_migrations table."""


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    db.table("cursors").create(
        {"channel": str, "job": str, "value": str, "updated_at": str},
        pk=("channel", "job"),
    )
    db.table("pushed").create(
        {
            "channel": str,
            "feature": str,
            "key": str,
            "hash": str,
            "sent_at": str,
            "due_at": str,
            "value": str,
        },
        pk=("channel", "feature", "key"),
    )
    links = db.table("links").create(
        {"channel": str, "kind": str, "erp_id": str, "channel_id": str, "synced_at": str},
        pk=("channel", "kind", "erp_id"),
    )
    links.create_index(["channel", "kind", "channel_id"])
    db.table("tokens").create(
        {"owner": str, "name": str, "value": str, "updated_at": str},
        pk=("owner", "name"),
    )
    counts = ("sent", "unchanged", "failed", "skipped")
    db.table("runs").create(
        {
            "id": int,
            "channel": str,
            "job": str,
            "started_at": str,
            "finished_at": str,
            "outcome": str,
            **{count: int for count in counts},
            "message": str,
        },
        pk="id",
        not_null=counts,
        defaults={count: 0 for count in counts},
    )
    db.table("failures").create(
        {
            "channel": str,
            "job": str,
            "key": str,
            "error": str,
            "attempts": int,
            "first_failed_at": str,
            "last_failed_at": str,
        },
        pk=("channel", "job", "key"),
    )
    db.table("notices").create(
        {"channel": str, "job": str, "key": str, "message": str, "created_at": str},
        pk=("channel", "job", "key"),
    )


@MIGRATIONS()
def m002_pushed_due_index(db: Database) -> None:
    """Incremental runs ask which hashes came due (jobs/incremental.py): one index range."""
    db.table("pushed").create_index(["channel", "feature", "due_at"], index_name="ix_pushed_due")
