"""The state file (contract §6): permissions, schema, and every record it keeps."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from syncctl.redact import MASK, redact
from syncctl.state import Failing, StateStore

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SAO_PAULO = timezone(timedelta(hours=-3))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "syncctl.db"


@pytest.fixture
def store(path: Path) -> Iterator[StateStore]:
    opened = StateStore(path)
    yield opened
    opened.close()


@pytest.fixture
def secret() -> Iterator[str]:
    value = "s3cr3t-app-token"
    redact.add(value)
    yield value
    redact.clear()


def _mode(file: Path) -> int:
    return stat.S_IMODE(file.stat().st_mode)


def _rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


# -- the file ------------------------------------------------------------------------


def test_new_file_and_its_wal_are_owner_only(store: StateStore, path: Path) -> None:
    store.set_cursor("vtex", "orders", "x")  # a write makes SQLite create the WAL sidecars
    assert _mode(path) == 0o600
    assert _mode(Path(f"{path}-wal")) == 0o600


def test_existing_file_with_wider_mode_is_narrowed(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.touch()
    path.chmod(0o644)
    StateStore(path).close()
    assert _mode(path) == 0o600


def test_journal_mode_is_wal(store: StateStore, path: Path) -> None:
    assert _rows(path, "PRAGMA journal_mode") == [("wal",)]


def test_migrations_are_applied_once(path: Path) -> None:
    StateStore(path).close()
    query = "SELECT name, applied_at FROM _sqlite_migrations WHERE migration_set = 'syncctl-state'"
    first = _rows(path, query)
    StateStore(path).close()
    assert _rows(path, query) == first
    assert [name for name, _ in first] == ["m001_initial", "m002_pushed_due_index"]
    tables = {name for (name,) in _rows(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"cursors", "pushed", "links", "tokens", "runs", "failures", "notices"} <= tables


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.start_run("vtex", "orders", datetime(2024, 5, 1, 12, 0))


# -- cursors -------------------------------------------------------------------------


def test_cursor_round_trips_per_channel_and_job(store: StateStore) -> None:
    assert store.cursor("vtex", "orders") is None
    store.set_cursor("vtex", "orders", "2024-05-01T00:00:00Z")
    store.set_cursor("vtex", "orders", "2024-05-01T06:00:00Z")
    store.set_cursor("skyhub", "orders", "queue-7")
    assert store.cursor("vtex", "orders") == "2024-05-01T06:00:00Z"
    assert store.cursor("skyhub", "orders") == "queue-7"
    assert store.cursor("vtex", "tickets") is None
    store.set_cursor("vtex", "orders", None)
    assert store.cursor("vtex", "orders") is None


# -- pushed hashes -------------------------------------------------------------------


def test_pushed_round_trips_with_aware_utc_times(store: StateStore) -> None:
    store.record_pushed("vtex", "price", [("sku-1", "h1", "99.90"), ("sku-2", "h2", None)], NOW)
    store.record_pushed("vtex", "price", [("sku-1", "h1b", "89.90")], NOW.astimezone(SAO_PAULO))

    pushed = store.pushed("vtex", "price", ["sku-1", "sku-2", "sku-unknown"])

    assert set(pushed) == {"sku-1", "sku-2"}
    assert (pushed["sku-1"].hash, pushed["sku-1"].value) == ("h1b", "89.90")
    assert (pushed["sku-2"].hash, pushed["sku-2"].value) == ("h2", None)
    assert pushed["sku-1"].sent_at == NOW
    assert pushed["sku-1"].sent_at.utcoffset() == timedelta(0)
    assert pushed["sku-1"].due_at.utcoffset() == timedelta(0)
    assert store.pushed("vtex", "stock", ["sku-1"]) == {}
    assert store.pushed("skyhub", "price", ["sku-1"]) == {}


def test_due_at_is_spread_over_the_last_quarter_of_resend_after(path: Path) -> None:
    resend_after = timedelta(hours=24)
    store = StateStore(path, resend_after=resend_after)
    keys = [f"sku-{n}" for n in range(1000)]
    store.record_pushed("vtex", "stock", [(key, "h", None) for key in keys], NOW)

    due = [item.due_at for item in store.pushed("vtex", "stock", keys).values()]
    store.close()

    assert len(due) == 1000
    assert all(NOW + 0.75 * resend_after <= at <= NOW + resend_after for at in due)
    # Spread over several hours, not bunched together.
    assert max(due) - min(due) > resend_after * 0.2


def test_due_at_is_stable_per_item(store: StateStore) -> None:
    store.record_pushed("vtex", "stock", [("sku-1", "h", None)], NOW)
    first = store.pushed("vtex", "stock", ["sku-1"])["sku-1"].due_at
    store.record_pushed("vtex", "stock", [("sku-1", "h", None)], NOW + timedelta(hours=1))
    assert store.pushed("vtex", "stock", ["sku-1"])["sku-1"].due_at == first + timedelta(hours=1)


def test_pushed_reads_more_keys_than_one_query_takes(store: StateStore) -> None:
    keys = [f"sku-{n}" for n in range(1200)]
    store.record_pushed("vtex", "stock", [(key, f"h-{key}", None) for key in keys], NOW)
    pushed = store.pushed("vtex", "stock", keys)
    assert len(pushed) == 1200
    assert pushed["sku-1199"].hash == "h-sku-1199"


def test_forget_pushed_by_feature_or_whole_channel(store: StateStore) -> None:
    for channel in ("vtex", "skyhub"):
        for feature in ("stock", "price"):
            store.record_pushed(channel, feature, [("sku-1", "h", None)], NOW)

    store.forget_pushed("vtex", "stock")
    assert store.pushed("vtex", "stock", ["sku-1"]) == {}
    assert set(store.pushed("vtex", "price", ["sku-1"])) == {"sku-1"}

    store.forget_pushed("vtex")
    assert store.pushed("vtex", "price", ["sku-1"]) == {}
    assert set(store.pushed("skyhub", "stock", ["sku-1"])) == {"sku-1"}


# -- links and tokens ----------------------------------------------------------------


def test_links_resolve_both_ways(store: StateStore) -> None:
    store.link("vtex", "order", "erp-1", "v-100", NOW)
    store.link("vtex", "order", "erp-2", "v-200", NOW)
    store.link("vtex", "order", "erp-2", "v-201", NOW)  # relinked
    store.link("vtex", "ticket", "erp-1", "t-9", NOW)

    assert store.channel_ids("vtex", "order", ["erp-1", "erp-2", "erp-3"]) == {
        "erp-1": "v-100",
        "erp-2": "v-201",
    }
    assert store.erp_ids("vtex", "order", ["v-100", "v-201", "v-200"]) == {
        "v-100": "erp-1",
        "v-201": "erp-2",
    }
    assert store.channel_ids("vtex", "ticket", ["erp-1"]) == {"erp-1": "t-9"}
    assert store.erp_ids("skyhub", "order", ["v-100"]) == {}


def test_token_is_committed_for_other_processes(store: StateStore, path: Path) -> None:
    assert store.token("mercadolivre:acme", "refresh") is None
    store.set_token("mercadolivre:acme", "refresh", "TG-1", NOW)
    store.set_token("mercadolivre:acme", "refresh", "TG-2", NOW)
    assert store.token("mercadolivre:acme", "refresh") == "TG-2"
    assert _rows(path, "SELECT value FROM tokens WHERE name = 'refresh'") == [("TG-2",)]


# -- failures and notices ------------------------------------------------------------


def test_failures_count_consecutive_attempts_until_cleared(store: StateStore) -> None:
    later = NOW + timedelta(minutes=30)
    assert store.record_failures("vtex", "stock", [("sku-1", "500"), ("sku-2", "400")], NOW) == {
        "sku-1": 1,
        "sku-2": 1,
    }
    assert store.record_failures("vtex", "stock", [("sku-1", "timeout")], later) == {"sku-1": 2}

    assert store.failing("vtex", "stock")[0] == Failing(
        "vtex", "stock", "sku-1", "timeout", 2, first_failed_at=NOW, last_failed_at=later
    )
    assert store.failing_keys("vtex", "stock") == {"sku-1", "sku-2"}

    store.clear_failures("vtex", "stock", ["sku-1"])
    assert store.failing_keys("vtex", "stock") == {"sku-2"}
    assert store.record_failures("vtex", "stock", [("sku-1", "500")], later) == {"sku-1": 1}


def test_failing_filters_and_orders_by_channel_job_key(store: StateStore) -> None:
    store.record_failures("vtex", "stock", [("b", "e"), ("a", "e")], NOW)
    store.record_failures("vtex", "price", [("c", "e")], NOW)
    store.record_failures("skyhub", "stock", [("d", "e")], NOW)

    assert [(f.channel, f.job, f.key) for f in store.failing()] == [
        ("skyhub", "stock", "d"),
        ("vtex", "price", "c"),
        ("vtex", "stock", "a"),
        ("vtex", "stock", "b"),
    ]
    assert [f.key for f in store.failing(channel="vtex")] == ["c", "a", "b"]
    assert [f.key for f in store.failing(job="stock")] == ["d", "a", "b"]


def test_clear_failures_takes_many_keys(store: StateStore) -> None:
    keys = [f"sku-{n}" for n in range(1200)]
    store.record_failures("vtex", "stock", [(key, "e") for key in keys], NOW)
    store.clear_failures("vtex", "stock", iter(keys[:1100]))
    assert store.failing_keys("vtex", "stock") == set(keys[1100:])


def test_errors_and_messages_are_stored_redacted(
    store: StateStore, path: Path, secret: str
) -> None:
    store.record_failures("vtex", "stock", [("sku-1", f"401 for token {secret}")], NOW)
    run_id = store.start_run("vtex", "stock", NOW)
    store.finish_run(
        run_id, NOW, outcome="failed", sent=0, unchanged=0, failed=1, skipped=0,
        message=f"auth failed with {secret}",
    )
    store.add_notice("vtex", "orders", "o-1", f"see {secret}", NOW)

    assert store.failing()[0].error == f"401 for token {MASK}"
    assert store.last_runs()[0].message == f"auth failed with {MASK}"
    assert store.notices()[0][3] == f"see {MASK}"
    assert secret.encode() not in b"".join(
        file.read_bytes() for file in path.parent.iterdir() if file.is_file()
    )


def test_notices_are_kept_once_per_key_newest_first(store: StateStore) -> None:
    later = NOW + timedelta(hours=1)
    store.add_notice("vtex", "orders", "o-1", "cancelled after invoicing", NOW)
    store.add_notice("vtex", "orders", "o-1", "cancelled after invoicing (again)", later)
    store.add_notice("skyhub", "orders", "o-2", "cancelled after invoicing", later)

    assert store.notices() == [
        ("skyhub", "orders", "o-2", "cancelled after invoicing", later),
        ("vtex", "orders", "o-1", "cancelled after invoicing", NOW),
    ]
    assert [notice[2] for notice in store.notices("vtex")] == ["o-1"]


# -- run log -------------------------------------------------------------------------


def test_last_runs_gives_the_latest_run_per_channel_and_job(store: StateStore) -> None:
    old = store.start_run("vtex", "stock", NOW)
    store.finish_run(
        old, NOW, outcome="ok", sent=5, unchanged=1, failed=0, skipped=0, message=None
    )
    latest = store.start_run("vtex", "stock", NOW + timedelta(minutes=1))
    store.finish_run(
        latest, NOW + timedelta(minutes=2),
        outcome="partial", sent=3, unchanged=2, failed=1, skipped=4, message="1 item failed",
    )
    running = store.start_run("vtex", "orders", NOW + timedelta(minutes=3))

    runs = {(run.channel, run.job): run for run in store.last_runs()}

    assert set(runs) == {("vtex", "stock"), ("vtex", "orders")}
    stock = runs["vtex", "stock"]
    assert stock.id == latest
    assert (stock.outcome, stock.sent, stock.unchanged, stock.failed, stock.skipped) == (
        "partial", 3, 2, 1, 4,
    )
    assert stock.finished_at == NOW + timedelta(minutes=2)
    orders = runs["vtex", "orders"]
    assert (orders.id, orders.finished_at, orders.outcome, orders.sent) == (running, None, None, 0)


# -- concurrency ---------------------------------------------------------------------


def test_writes_from_eight_threads(store: StateStore) -> None:
    def work(worker: int) -> int:
        run_id = store.start_run("vtex", f"job-{worker}", NOW)
        for batch in range(10):
            keys = [f"w{worker}-b{batch}-{n}" for n in range(20)]
            store.record_pushed("vtex", "stock", [(key, "h", None) for key in keys], NOW)
            store.record_failures("vtex", "stock", [(keys[0], "e")], NOW)
            store.link("vtex", "order", keys[0], f"v-{keys[0]}", NOW)
        store.finish_run(
            run_id, NOW, outcome="ok", sent=200, unchanged=0, failed=0, skipped=0, message=None
        )
        return run_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        run_ids = list(pool.map(work, range(8)))

    assert len(set(run_ids)) == 8
    all_keys = [f"w{w}-b{b}-{n}" for w in range(8) for b in range(10) for n in range(20)]
    assert len(store.pushed("vtex", "stock", all_keys)) == 1600
    assert len(store.failing_keys("vtex", "stock")) == 80
    assert {run.outcome for run in store.last_runs()} == {"ok"}


def test_two_connections_on_one_file_count_attempts_exactly(path: Path) -> None:
    """Two processes (here two stores) recording failures at once: no lost updates."""
    stores = [StateStore(path), StateStore(path)]

    def fail_repeatedly(store: StateStore) -> None:
        for _ in range(25):
            store.record_failures("vtex", "stock", [("sku-1", "e")], NOW)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(fail_repeatedly, stores))

    assert stores[0].failing()[0].attempts == 50
    for store in stores:
        store.close()
