"""The state file's schema, as named migrations applied once each, in order.

A schema change is a new function appended to MIGRATIONS; an applied one is never edited.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database

Migration = Callable[[Database], None]

MIGRATIONS_TABLE = "_migrations"


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


MIGRATIONS: tuple[Migration, ...] = (m001_initial,)
"""In order of application; each is recorded under its function name."""


def apply_migrations(
    db: Database, applied_at: str, migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[str]:
    """Apply the migrations not yet recorded, stamping each with `applied_at` (ISO-8601 UTC);
    returns the names applied.

    Call inside one write transaction, so that processes opening a new file at the same time
    cannot both apply a migration.
    """
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT)"
    )
    recorded = {row["name"] for row in db.query(f"SELECT name FROM {MIGRATIONS_TABLE}")}
    pending = [migration for migration in migrations if migration.__name__ not in recorded]
    for migration in pending:
        migration(db)
        db.table(MIGRATIONS_TABLE).insert(
            {"name": migration.__name__, "applied_at": applied_at}
        )
    return [migration.__name__ for migration in pending]
