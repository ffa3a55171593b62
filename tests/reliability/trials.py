"""How many trials to run, with which seed, and the figures the suite reports.

`SYNCCTL_TRIALS=full` runs the full trial counts (RELIABILITY.md); the default is a
seeded subset small enough for CI; an integer runs that many trials per job.
`SYNCCTL_SEED` picks the seed (default: a fixed one, so CI is reproducible).
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field

DEFAULT_SEED = 20261126
MODE = os.environ.get("SYNCCTL_TRIALS", "ci")
SEED = int(os.environ.get("SYNCCTL_SEED") or DEFAULT_SEED)
# Trials run side by side: each has its own fake, ERP and syncctl process.
WORKERS = int(os.environ.get("SYNCCTL_TRIAL_WORKERS") or min(4, os.cpu_count() or 2))


def trials(ci: int, full: int) -> int:
    if MODE == "full":
        return full
    if MODE.isdigit():
        return int(MODE)
    return ci


def rng(*parts: object) -> random.Random:
    """A random source fixed by the seed and `parts` (scenario, channel, job, trial)."""
    return random.Random(":".join(map(str, (SEED, *parts))))


def reproduce(keyword: str) -> str:
    mode = "full" if MODE == "full" else MODE
    return f"SYNCCTL_SEED={SEED} SYNCCTL_TRIALS={mode} pytest -m reliability -k '{keyword}'"


@dataclass
class Figures:
    """One row of RELIABILITY.md's table."""

    scenario: str
    tries: str
    command: str
    trials: int = 0
    orders: int = 0  # channel orders checked exactly once in the ERP
    # invoices, tracking, delivery updates and replies checked on the channel; tracking
    # events and customers' messages checked in the ERP
    messages: int = 0
    losses: int = 0
    duplicates: int = 0
    leaks: int = 0
    notes: list[str] = field(default_factory=list)


_LOCK = threading.Lock()
FIGURES: dict[str, Figures] = {}


def record(scenario: str, tries: str, keyword: str, **counts: int) -> None:
    """Add one scenario's counts to the summary printed at the end of the run."""
    with _LOCK:
        row = FIGURES.setdefault(scenario, Figures(scenario, tries, reproduce(keyword)))
        for name, value in counts.items():
            setattr(row, name, getattr(row, name) + value)


def table() -> list[str]:
    lines = [
        f"seed {SEED}, trials: {MODE}",
        "| scenario | what it tries | trials | orders | messages | losses | duplicates | leaks | reproduce |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in FIGURES.values():
        lines.append(
            f"| {row.scenario} | {row.tries} | {row.trials} | {row.orders} | {row.messages} | "
            f"{row.losses} | {row.duplicates} | {row.leaks} | `{row.command}` |"
        )
    return lines
