"""What one job did on one channel (or carrier), and how results become an exit code."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Outcome(StrEnum):
    ok = "ok"
    failed = "failed"  # some items failed; recorded, retried next run
    error = "error"  # the channel's run broke off on an unexpected error
    auth = "auth"  # credentials refused
    unavailable = "unavailable"  # unreachable / rate-limited through every retry
    locked = "locked"  # another process works on this channel
    unsupported = "unsupported"  # the channel has no API for this job
    off = "off"  # the feature is switched off in the config


EXIT_CODE = {
    Outcome.ok: 0,
    Outcome.unsupported: 0,
    Outcome.off: 0,
    Outcome.failed: 1,
    Outcome.error: 1,
    Outcome.auth: 3,
    Outcome.unavailable: 75,
    Outcome.locked: 75,
}
PRECEDENCE = (2, 3, 1, 75)
_FAIL_LOCK = threading.Lock()  # contract §3: the first that applies wins


def combine_exit_codes(codes: list[int]) -> int:
    for code in PRECEDENCE:
        if code in codes:
            return code
    return 0


@dataclass(frozen=True)
class Failure:
    key: str
    error: str
    attempts: int = 1


@dataclass
class JobResult:
    channel: str
    job: str
    outcome: Outcome = Outcome.ok
    sent: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)  # --dry-run: what would go out
    message: str | None = None  # why the outcome is what it is, when not ok

    @property
    def exit_code(self) -> int:
        return EXIT_CODE[self.outcome]

    def fail(self, key: str, error: str) -> None:
        with _FAIL_LOCK:  # push workers report from several threads
            self.failed += 1
            self.failures.append(Failure(key, error))

    def skip(self, key: str, note: str) -> None:
        """An item the channel has nothing to take for (see errors.NothingToSend)."""
        with _FAIL_LOCK:
            self.skipped += 1
            self.notes.append(f"{key}: {note}")

    def settle(self) -> None:
        """An ok run with failed items is a failed run."""
        if self.outcome is Outcome.ok and self.failed:
            self.outcome = Outcome.failed

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "channel": self.channel,
            "job": self.job,
            "outcome": self.outcome.value,
            "sent": self.sent,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "skipped": self.skipped,
            "failures": [
                {"key": f.key, "error": f.error, "attempts": f.attempts} for f in self.failures
            ],
        }
        if self.message:
            doc["message"] = self.message
        if self.notes:
            doc["notes"] = self.notes
        if self.planned:
            doc["planned"] = self.planned
        return doc


class JobWatch(Protocol):
    """Told when each job starts and ends (the terminal's progress display); the
    result it is given moves while the job runs."""

    def started(self, result: JobResult) -> None: ...

    def finished(self, result: JobResult) -> None: ...
