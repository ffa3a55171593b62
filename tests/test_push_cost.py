"""What a push costs besides the requests themselves (jobs/push.py, state/store.py):
one state transaction per chunk, the next chunk queued while the last one's requests
finish, and none of it at the price of what the state promises: only what the
channel accepted is recorded, and a run that breaks off keeps what was accepted."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncctl.domain import UTC
from syncctl.errors import AuthError
from syncctl.jobs.push import CHUNK, PushSpec, push
from syncctl.jobs.result import JobResult
from syncctl.jobs.runner import JobOptions, Run
from syncctl.state import StateStore

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CHANNEL, FEATURE, JOB = "shop", "stock", "push-stock"
GUARD_S = 10  # how long a test waits for something that must happen before it gives up


@dataclass
class Runtime:
    """What the push engine asks of a Runtime when the spec reads no changes."""

    state: StateStore
    now: Callable[[], datetime] = lambda: NOW


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(tmp_path / "state.db", resend_after=timedelta(hours=24))
    yield store
    store.close()


@dataclass
class Channel:
    """Records what push() asks of a channel; `on_send` may block or fail an item."""

    sent: list[str] = field(default_factory=list)
    prepared: list[tuple[list[str], int]] = field(default_factory=list)  # (chunk, items sent by then)
    on_send: Callable[[str], None] = lambda _key: None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, key: str, _payload: dict[str, Any]) -> None:
        self.on_send(key)
        with self.lock:
            self.sent.append(key)

    def prepare(self, keys: list[str]) -> None:
        with self.lock:
            self.prepared.append((keys, len(self.sent)))


def keys(count: int) -> list[str]:
    return [f"SKU{n:05d}" for n in range(count)]


def run_push(state: StateStore, channel: Channel, items: list[str], *, concurrency: int = 4, grouped: bool = False) -> Run:
    run = Run(Runtime(state), CHANNEL, channel, JobOptions(), JobResult(CHANNEL, JOB), concurrency)  # type: ignore[arg-type]
    push(run, PushSpec(
        feature=FEATURE, items=items, key=lambda key: key, payload=lambda key: {"sku": key},
        send=channel.send, prepare=channel.prepare, group=(lambda key: key[:-1]) if grouped else None,
    ))
    return run


def count_transactions(state: StateStore) -> list[str]:
    begun: list[str] = []
    state._db.conn.set_trace_callback(lambda sql: begun.append(sql) if sql.startswith("BEGIN") else None)
    return begun


def test_accepted_hashes_and_cleared_failures_are_saved_in_one_transaction_per_chunk(state: StateStore) -> None:
    items = keys(2 * CHUNK + 10)
    state.record_failures(CHANNEL, JOB, [(items[0], "HTTP 500"), (items[-1], "HTTP 500")], NOW)
    begun = count_transactions(state)
    run = run_push(state, Channel(), items)
    assert len(begun) == 3  # one per chunk
    assert run.result.sent == len(items)
    assert len(state.pushed(CHANNEL, FEATURE, items)) == len(items)
    assert state.failing(CHANNEL, JOB) == []


def test_the_next_chunk_is_queued_once_the_last_is_under_way_not_after_it_is_done(state: StateStore) -> None:
    items = keys(2 * CHUNK)
    next_chunk_prepared = threading.Event()

    def last_of_the_first_chunk_waits_for_the_next(key: str) -> None:
        if key == items[CHUNK - 1]:
            assert next_chunk_prepared.wait(GUARD_S), "the next chunk waited for this one to be done"

    channel = Channel(on_send=last_of_the_first_chunk_waits_for_the_next)
    original_prepare = channel.prepare

    def prepare(chunk: list[str]) -> None:
        original_prepare(chunk)
        if chunk[0] == items[CHUNK]:
            next_chunk_prepared.set()

    channel.prepare = prepare  # type: ignore[method-assign]
    run_push(state, channel, items, concurrency=4)
    [(first, _), (second, sent_by_then)] = channel.prepared
    assert (first, second) == (items[:CHUNK], items[CHUNK:])
    assert sent_by_then >= CHUNK - 4  # every group of the first chunk taken: at most one per worker still going
    assert len(state.pushed(CHANNEL, FEATURE, items)) == len(items)


def test_a_group_that_may_go_on_in_the_next_chunk_keeps_its_order(state: StateStore) -> None:
    items = keys(2 * CHUNK)  # groups of ten consecutive keys
    channel = Channel()
    run_push(state, channel, items, grouped=True)
    [_, (_, sent_by_then)] = channel.prepared
    assert sent_by_then == CHUNK  # the next chunk waited until every item of the last was sent
    assert channel.sent.index(items[CHUNK - 1]) < channel.sent.index(items[CHUNK])


def test_an_error_that_ends_the_run_stops_later_chunks_and_keeps_what_was_accepted(state: StateStore) -> None:
    items = keys(3 * CHUNK)
    refused = items[CHUNK + 100]

    def refuse(key: str) -> None:
        if key == refused:
            raise AuthError("credentials refused")

    channel = Channel(on_send=refuse)
    with pytest.raises(AuthError):
        run_push(state, channel, items, concurrency=1)
    recorded = state.pushed(CHANNEL, FEATURE, items)
    assert set(recorded) == set(items[: CHUNK + 100])  # accepted, all of it; the refused one, not
    assert not set(channel.sent) & set(items[2 * CHUNK:])  # no item of a later chunk went out


def test_an_unchanged_catalogue_asks_nothing_of_the_channel_and_writes_nothing(state: StateStore) -> None:
    items = keys(CHUNK + 1)
    run_push(state, Channel(), items)
    begun = count_transactions(state)
    channel = Channel()
    run = run_push(state, channel, items)
    assert (channel.sent, channel.prepared, begun) == ([], [], [])
    assert run.result.unchanged == len(items)
