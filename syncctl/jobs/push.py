"""The one push engine behind push-products, push-stock, push-prices and push-invoices.

Items stream from the ERP in chunks; each item's payload is hashed and compared
with what the channel last accepted (one state query per chunk). Only changed
items, or items whose hash is due for re-assertion, are sent: concurrently up to
the channel's limit, items of one group one after another. Accepted hashes are
saved per chunk, so an interrupted run loses nothing it already sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any, Generic, TypeVar

from syncctl.errors import RecordRejected, SyncctlError
from syncctl.jobs.runner import Run
from syncctl.redact import redact
from syncctl.state import Pushed

log = logging.getLogger("syncctl.jobs")

T = TypeVar("T")
CHUNK = 500


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


def payload_hash(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_canonical)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value.normalize())
    raise TypeError(f"cannot hash {type(value).__name__}")


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def push(run: Run, spec: PushSpec[T]) -> None:
    with ThreadPoolExecutor(max_workers=run.concurrency, thread_name_prefix=run.name) as pool:
        for chunk in chunked(spec.items):
            _push_chunk(run, spec, chunk, pool)


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
        if not opts.full and prev is not None and prev.hash == digest and prev.due_at > now:
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
    accepted: list[tuple[str, str, str | None]] = []
    try:
        for group_accepted in pool.map(lambda group: _send_group(run, spec, group), _groups(spec, due)):
            accepted += group_accepted
    finally:
        # Saved even when the channel broke off midway (auth, outage): what was accepted stays accepted.
        if accepted:
            state.record_pushed(run.name, spec.feature, accepted, run.now)
            state.clear_failures(run.name, run.result.job, [key for key, _, _ in accepted])
            result.sent += len(accepted)


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
        except RecordRejected as exc:
            error = redact(exc)
        except (ValueError, KeyError, TypeError) as exc:  # an answer the adapter could not read
            log.debug("%s: %s failed", run.name, key, exc_info=True)
            error = redact(f"{type(exc).__name__}: {exc}")
        else:
            accepted.append((key, digest, spec.summary(item)))
            continue
        run.result.fail(key, error)
        for later, _, _ in group[position + 1:]:
            run.result.fail(spec.key(later), f"not sent: waits for {key}, which failed")
        break
    return accepted
