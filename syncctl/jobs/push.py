"""The one push engine behind push-products, push-stock, push-prices and push-invoices.

Items stream from the ERP in chunks (all of them, or those that may have changed
since the last run: see incremental.py); each item's payload is hashed and compared
with what the channel last accepted (one state query per chunk). Only changed
items, or items whose hash is due for re-assertion, are sent: concurrently up to
the channel's limit, items of one group one after another. The next chunk is read,
compared and queued while the last one's requests finish, so no pause between chunks
holds the pace below the channel's limit (unless items are grouped: a group may go on
in the next chunk, which then waits). Accepted hashes are saved per chunk, in one
transaction, once its requests are done, so an interrupted run loses nothing it
already sent and records nothing the channel did not accept. An item the
channel has nothing to take for (NothingToSend) is noted once and left alone until
its payload changes: nothing was sent, so there is nothing to re-assert.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Any, Generic, TypeVar

from syncctl.errors import NothingToSend, RecordRejected, SyncctlError
from syncctl.jobs import incremental
from syncctl.jobs.incremental import Changes
from syncctl.jobs.runner import Run
from syncctl.redact import redact
from syncctl.state import Pushed

log = logging.getLogger("syncctl.jobs")

T = TypeVar("T")
CHUNK = 500
_NOTHING_SENT = "nothing-sent:"  # prefix of the hash kept for an item the channel did not take

Entry = tuple[T, dict[str, Any], str]  # an item, its payload, the payload's hash
Accepted = tuple[str, str, str | None]  # key, hash, summary: what the state records


@dataclass(frozen=True)
class PushSpec(Generic[T]):
    feature: str  # the state's namespace for hashes (a feature name)
    items: Iterable[T]
    key: Callable[[T], str]
    payload: Callable[[T], dict[str, Any]]
    send: Callable[[T, dict[str, Any]], None]
    group: Callable[[T], str] | None = None  # same group: sent in order, stop at the first failure
    summary: Callable[[T], str | None] = lambda _item: None  # saved beside the hash (e.g. the price sent)
    hold: Callable[[T, Pushed | None], str | None] = lambda _item, _prev: None  # why not to send it now
    prepare: Callable[[list[str]], None] | None = None  # bulk id resolution before a chunk is sent
    changes: Changes[T] | None = None  # how to read only what may have changed (None: always `items`)


def payload_hash(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_canonical)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value.normalize())
    raise TypeError(f"cannot hash {type(value).__name__}")


def _nothing_sent(digest: str) -> str:
    return _NOTHING_SENT + digest


def _unchanged(prev: Pushed | None, digest: str, now: datetime) -> bool:
    if prev is None:
        return False
    return prev.hash == digest and prev.due_at > now or prev.hash == _nothing_sent(digest)


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def push(run: Run, spec: PushSpec[T]) -> None:
    selection = incremental.select(run, spec.feature, spec.items, spec.changes, never_due=_NOTHING_SENT)
    stop = threading.Event()
    error: Exception | None = None
    sending: _Sending[T] | None = None
    with ThreadPoolExecutor(max_workers=run.concurrency, thread_name_prefix=run.name) as pool:
        try:
            for chunk in chunked(selection.items):
                if stop.is_set():
                    break
                due = _due(run, spec, chunk)  # read and compared while the chunk before is being sent
                if not due or _planned(run, spec, due):
                    continue
                if sending is not None and spec.group is not None:
                    # A group may go on in this chunk: its items stay in order only if the last chunk is done.
                    error, sending = error or _record(run, spec, sending), None
                elif sending is not None:
                    sending.wait_all_taken()  # all under way: this chunk queues behind them, no pause between
                if stop.is_set():
                    break
                if spec.prepare is not None:
                    spec.prepare([spec.key(item) for item, _, _ in due])
                started = _Sending(run, spec, _groups(spec, due), pool, stop)
                if sending is not None:
                    error = error or _record(run, spec, sending)
                sending = started
        except BaseException:
            stop.set()  # the run broke off here: no task takes another group
            raise
        finally:
            if sending is not None:
                error = error or _record(run, spec, sending)
    if error is not None:
        raise error
    incremental.finish(run, selection)


def _due(run: Run, spec: PushSpec[T], chunk: list[T]) -> list[Entry[T]]:
    """The chunk's items to send: changed, due for re-assertion, or all under --full;
    not those a hold rule keeps back, nor those whose payload cannot be built."""
    result, opts = run.result, run.options
    keys = [spec.key(item) for item in chunk]
    previous = run.rt.state.pushed(run.name, spec.feature, keys)  # read under --full too: the hold rules need it
    now = run.now
    due: list[Entry[T]] = []
    for item, key in zip(chunk, keys):
        try:
            payload = spec.payload(item)
        except SyncctlError as exc:
            result.fail(key, redact(exc))
            continue
        digest = payload_hash(payload)
        prev = previous.get(key)
        if not opts.full and _unchanged(prev, digest, now):
            result.unchanged += 1
            continue
        held = None if opts.allow_drop else spec.hold(item, prev)
        if held:
            result.fail(key, held)
            continue
        due.append((item, payload, digest))
    return due


def _planned(run: Run, spec: PushSpec[T], due: list[Entry[T]]) -> bool:
    """Under --dry-run: what would be sent is noted, and nothing more happens."""
    if not run.options.dry_run:
        return False
    run.result.sent += len(due)
    run.result.planned += [{"key": spec.key(item), "payload": payload} for item, payload, _ in due]
    return True


def _record(run: Run, spec: PushSpec[T], sending: _Sending[T]) -> Exception | None:
    """Once a chunk's groups are done: what the channel accepted, in one state transaction
    (even when the channel broke off midway: what was accepted stays accepted); returns
    the error that ended the run, if one did."""
    accepted, error = sending.results()
    if accepted:
        run.rt.state.record_pushed(run.name, spec.feature, accepted, run.now, clearing_failures_of=run.result.job)
        run.result.sent += sum(1 for _, digest, _ in accepted if not digest.startswith(_NOTHING_SENT))
    return error


class _Sending(Generic[T]):
    """One chunk's groups, sent by up to `concurrency` tasks of the pool that each take
    the next group until none is left. The first error that ends the channel's run (auth,
    outage) sets `stop`: no task takes another group, of this chunk or a later one, so a
    channel that is down is not asked item after item; groups under way finish, and what
    they got accepted is kept."""

    def __init__(
        self, run: Run, spec: PushSpec[T], groups: list[list[Entry[T]]], pool: ThreadPoolExecutor, stop: threading.Event
    ) -> None:
        self._run, self._spec, self._stop = run, spec, stop
        self._left = deque(groups)
        self._all_taken = threading.Event()
        tasks = min(run.concurrency, len(groups))
        self._tasks = [pool.submit(self._take_and_send) for _ in range(tasks)]

    def wait_all_taken(self) -> None:
        """Until every group is under way or done (or the run stopped): the next chunk may be queued."""
        self._all_taken.wait()

    def results(self) -> tuple[list[Accepted], Exception | None]:
        """Once every task is done: what the channel accepted, and the first error."""
        accepted: list[Accepted] = []
        error = None
        for task in self._tasks:
            mine, failed = task.result()
            accepted += mine
            error = error or failed
        return accepted, error

    def _take_and_send(self) -> tuple[list[Accepted], Exception | None]:
        accepted: list[Accepted] = []
        try:
            while not self._stop.is_set():
                try:
                    group = self._left.popleft()
                except IndexError:
                    break
                if not self._left:
                    self._all_taken.set()
                accepted += _send_group(self._run, self._spec, group)
        except Exception as exc:  # noqa: BLE001 - raised by push() once what was accepted is saved
            self._stop.set()
            return accepted, exc
        finally:
            self._all_taken.set()  # taken, or left behind by a stop
        return accepted, None


def _groups(spec: PushSpec[T], due: list[Entry[T]]) -> list[list[Entry[T]]]:
    if spec.group is None:
        return [[entry] for entry in due]
    groups: dict[str, list[Entry[T]]] = {}
    for entry in due:
        groups.setdefault(spec.group(entry[0]), []).append(entry)
    return list(groups.values())


def _send_group(run: Run, spec: PushSpec[T], group: list[Entry[T]]) -> list[Accepted]:
    """Send one group in order; AuthError/TransientError propagate and end the channel's run."""
    accepted: list[Accepted] = []
    for position, (item, payload, digest) in enumerate(group):
        key = spec.key(item)
        try:
            spec.send(item, payload)
        except NothingToSend as exc:
            run.result.skip(key, redact(exc))
            # No summary: nothing was sent, so nothing may stand as "the last value sent".
            accepted.append((key, _nothing_sent(digest), None))
            continue
        except RecordRejected as exc:
            error = redact(exc)
        except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as exc:
            # A field missing or of the wrong type in the channel's answer: this item's problem.
            log.debug("%s: %s failed", run.name, key, exc_info=True)
            error = redact(f"the answer to {key} could not be read: {type(exc).__name__}: {exc}")
        else:
            accepted.append((key, digest, spec.summary(item)))
            continue
        run.result.fail(key, error)
        for later, _, _ in group[position + 1:]:
            run.result.fail(spec.key(later), f"not sent: waits for {key}, which failed")
        break
    return accepted
