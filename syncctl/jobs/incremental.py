"""Which items a push looks at: every one, or only those that may have changed.

Every item is compared (its payload hashed and checked against what the channel
accepted) on a run with no cursor yet, under --full, when the channel's settings
changed since the cursor was saved (a new reserve changes every payload while no ERP
row changes), and when the cursor is ahead of the clock. Any other run reads only the
keys that may push differently than at the start of the last complete run:

- ERP rows stamped since then, less OVERLAP (the ERP's clock may lag ours, and a
  transaction stamped before our read may commit after it), and the price edges
  (schedule starts, sale window starts and ends) that fell since;
- items whose hash came due for re-assertion (resend_after), and items failing;
- a slice of the rolling sweep: the next keys in sku order, as many as compare every
  key once per resend_after. It catches what timestamps cannot show: a deleted row,
  an edit that left updated_at alone.

When that is a large share of the catalogue (syncctl stopped for hours, a bulk edit),
reading keys chunk by chunk would cost more than the one streamed pass: the run
compares everything. The cursor moves only once the run's results, failures
included, are in the state file (Run.after_recorded): a crash in between repeats
work and loses none.

Nothing here counts the catalogue (a million keys take a noticeable count): the
cursor carries the number of items the last full pass read, refreshed each time the
sweep completes a pass. It sizes the sweep and tells how many items a run left
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from syncctl import __version__
from syncctl.config import ChannelSettings
from syncctl.jobs.runner import Run

T = TypeVar("T")

OVERLAP = timedelta(minutes=5)
MIN_CAP = 10_000  # keys an incremental run may read, at least...
CAP_SHARE = 4  # ...or this fraction (1/4) of the catalogue; more, and it compares everything
_PAYLOAD_SETTINGS = {"type", "stock", "prices", "options"}  # what besides ERP rows shapes a payload


@dataclass(frozen=True)
class Changes(Generic[T]):
    """How a push job finds and reads what may have changed."""

    read: Callable[[list[str]], Iterable[T]]  # the items of these keys
    changed: Callable[[datetime, datetime, int], list[str]]  # keys changed in (since, until]; at most limit
    keys_after: Callable[[str | None, int], list[str]]  # the sweep: the next keys after one, in key order


@dataclass(frozen=True)
class Cursor:
    """Saved per channel and job once a run is recorded."""

    since: datetime  # when the last complete run started reading the ERP
    settings: str  # fingerprint of what shaped the payloads then
    items: int  # the catalogue's items, as last counted (a full pass, or a whole sweep)
    sweep_after: str | None = None  # the last key the sweep compared (None: start over)
    swept: int = 0  # keys compared by the sweep's current pass so far

    def text(self) -> str:
        return json.dumps({**asdict(self), "since": self.since.isoformat()})

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """None for no cursor, or one this version cannot read: the run compares everything."""
        try:
            saved = json.loads(text or "")
            return cls(**{**saved, "since": datetime.fromisoformat(saved["since"])})
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Selection(Generic[T]):
    items: Iterable[T]
    next_cursor: Callable[[], Cursor] | None  # asked once the items are read; None: leave the cursor
    catalogue: int | None = None  # items in all when only some were read: the rest are unchanged


class _Counted(Generic[T]):
    def __init__(self, items: Iterable[T]) -> None:
        self._items = items
        self.count = 0

    def __iter__(self) -> Iterator[T]:
        for item in self._items:
            self.count += 1
            yield item


def settings_fingerprint(settings: ChannelSettings) -> str:
    """The channel settings that shape payloads, and syncctl's version (its mappings)."""
    shaping = settings.model_dump_json(include=_PAYLOAD_SETTINGS, serialize_as_any=True)
    return hashlib.sha256(f"{__version__}\0{shaping}".encode()).hexdigest()[:16]


def select(
    run: Run, feature: str, everything: Iterable[T], changes: Changes[T] | None, *, never_due: str | None = None
) -> Selection[T]:
    """What this run of `feature` reads: `everything`, or the items of the keys that may
    have changed. Runs on chosen SKUs (--sku) read those and leave the cursor alone.
    Hashes starting with `never_due` mark items with nothing to re-assert."""
    if changes is None or run.options.skus:
        return Selection(everything, None)
    started = run.now
    settings = settings_fingerprint(run.channel.settings)
    last = Cursor.parse(run.rt.state.cursor(run.name, run.result.job))
    # A cursor from the future (the clock went back, or another process's clock ran ahead)
    # would hide every change stamped before it: compare everything, and start again from now.
    if not (run.options.full or last is None or last.settings != settings or last.since > started):
        found = _keys(run, feature, changes, last, started, never_due)
        if found is not None:
            keys, cursor = found
            return Selection(changes.read(keys), lambda: cursor, catalogue=last.items)
    counted = _Counted(everything)
    return Selection(counted, lambda: Cursor(started, settings, counted.count))


def _keys(
    run: Run, feature: str, changes: Changes[T], last: Cursor, started: datetime, never_due: str | None
) -> tuple[list[str], Cursor] | None:
    """The keys to read, sorted, and the cursor to save after them; None when there are too many."""
    state = run.rt.state
    cap = max(MIN_CAP, last.items // CAP_SHARE)
    resend_after = timedelta(hours=run.rt.config.state.resend_after_h)
    # At least one key per run, so a catalogue that was empty gets counted again.
    sweep = math.ceil(max(last.items, 1) * max(0.0, (started - last.since) / resend_after))
    if sweep > cap:
        return None
    sources: tuple[Callable[[], Iterable[str]], ...] = (
        lambda: changes.changed(last.since - OVERLAP, started, cap + 1),
        lambda: state.due_keys(run.name, feature, started, cap + 1, never_due=never_due),
        lambda: state.failing_keys(run.name, run.result.job),
    )
    keys: set[str] = set()
    for source in sources:
        keys.update(source())
        if len(keys) > cap:
            return None
    swept = changes.keys_after(last.sweep_after, sweep) if sweep else []
    keys.update(swept)
    cursor = replace(last, since=started, sweep_after=swept[-1] if swept else last.sweep_after,
                     swept=last.swept + len(swept))
    if len(swept) < sweep:  # the slice reached the last key: the pass is whole, the next starts over
        cursor = replace(cursor, items=cursor.swept, sweep_after=None, swept=0)
    return sorted(keys), cursor


def finish(run: Run, selection: Selection[T]) -> None:
    """After the items are sent: count what was not read as unchanged, and have the
    cursor saved once the run is recorded."""
    result = run.result
    if selection.catalogue is not None:
        left = selection.catalogue - result.sent - result.failed - result.skipped
        result.unchanged = max(result.unchanged, left)
    if selection.next_cursor is None or run.options.dry_run:
        return
    cursor = selection.next_cursor()
    run.after_recorded.append(lambda: run.rt.state.set_cursor(run.name, result.job, cursor.text()))
