"""The one push engine behind push-products, push-stock, push-prices and push-invoices.

Items stream from the ERP in chunks (all of them, or those that may have changed
since the last run: see incremental.py); each item's payload is hashed and compared
with what the channel last accepted (one state query per chunk). Only changed
items, or items whose hash is due for re-assertion, are sent: concurrently up to
the channel's limit, items of one group one after another. Accepted hashes are
saved per chunk, so an interrupted run loses nothing it already sent. An item the
channel has nothing to take for (NothingToSend) is noted once and left alone until
its payload changes: nothing was sent, so there is nothing to re-assert.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
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
    with ThreadPoolExecutor(max_workers=run.concurrency, thread_name_prefix=run.name) as pool:
        for chunk in chunked(selection.items):
            _push_chunk(run, spec, chunk, pool)
    incremental.finish(run, selection)


def _push_chunk(run: Run, spec: PushSpec[T], chunk: list[T], pool: ThreadPoolExecutor) -> None:
    result, state, opts = run.result, run.rt.state, run.options
    keys = [spec.key(item) for item in chunk]
    previous = state.pushed(run.name, spec.feature, keys)  # read under --full too: the hold rules need it
    now = run.now
    due: list[tuple[T, dict[str, Any], str]] = []
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
    if not due:
        return
    if opts.dry_run:
        result.sent += len(due)
        result.planned += [{"key": spec.key(item), "payload": payload} for item, payload, _ in due]
        return
    if spec.prepare is not None:
        spec.prepare([spec.key(item) for item, _, _ in due])
    accepted, error = _send_all(run, spec, _groups(spec, due), pool)
    # Saved even when the channel broke off midway (auth, outage): what was accepted stays accepted.
    if accepted:
        state.record_pushed(run.name, spec.feature, accepted, run.now)
        state.clear_failures(run.name, run.result.job, [key for key, _, _ in accepted])
        result.sent += sum(1 for _, digest, _ in accepted if not digest.startswith(_NOTHING_SENT))
    if error is not None:
        raise error


def _send_all(
    run: Run, spec: PushSpec[T], groups: list[list[tuple[T, dict[str, Any], str]]], pool: ThreadPoolExecutor
) -> tuple[list[tuple[str, str, str | None]], Exception | None]:
    """Send every group. The first error that ends the channel's run (auth, outage)
    cancels the groups not started yet, so a channel that is down is not asked item
    after item; groups under way finish, and what they got accepted is kept."""
    stop = threading.Event()

    def send(group: list[tuple[T, dict[str, Any], str]]) -> list[tuple[str, str, str | None]]:
        if stop.is_set():  # a worker freed after the error may start one before it is cancelled
            return []
        try:
            return _send_group(run, spec, group)
        except Exception:
            stop.set()
            raise

    futures = [pool.submit(send, group) for group in groups]
    accepted: list[tuple[str, str, str | None]] = []
    error: Exception | None = None
    for future in as_completed(futures):
        if future.cancelled():
            continue
        try:
            accepted += future.result()
        except Exception as exc:  # noqa: BLE001 - re-raised by the caller once what was accepted is saved
            if error is None:
                error = exc
                for pending in futures:
                    pending.cancel()
    return accepted, error


def _groups(spec: PushSpec[T], due: list[tuple[T, dict[str, Any], str]]) -> list[list[tuple[T, dict[str, Any], str]]]:
    if spec.group is None:
        return [[entry] for entry in due]
    groups: dict[str, list[tuple[T, dict[str, Any], str]]] = {}
    for entry in due:
        groups.setdefault(spec.group(entry[0]), []).append(entry)
    return list(groups.values())


def _send_group(run: Run, spec: PushSpec[T], group: list[tuple[T, dict[str, Any], str]]) -> list[tuple[str, str, str | None]]:
    """Send one group in order; AuthError/TransientError propagate and end the channel's run."""
    accepted = []
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
