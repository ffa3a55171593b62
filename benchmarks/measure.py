"""Run syncctl as cron would (its CLI, in a process of its own) and measure it: wall
time, CPU time and peak RSS of that process alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float  # user + system
    peak_rss_mb: float
    exit_code: int
    output: Any  # the --json document (None if there was none)
    started: float  # time.monotonic() at spawn
    ended: float  # ... and when the process had exited

    def result(self, channel: str, job: str) -> dict[str, Any]:
        return next(r for r in self.output["results"] if r["channel"] == channel and r["job"] == job)


def run_module(module: str, args: list[str], env: dict[str, str]) -> Measured:
    """`python -m module args...`; stdout must be one JSON document (or nothing)."""
    with tempfile.TemporaryFile() as stderr:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=stderr,
            env={**os.environ, "PYTHONPATH": _with_repository(os.environ.get("PYTHONPATH")), **env},
        )
        assert process.stdout is not None
        out = process.stdout.read()
        # wait4, not wait: the rusage of this child alone (RUSAGE_CHILDREN keeps the max of all).
        _, status, usage = os.wait4(process.pid, 0)
        ended = time.monotonic()
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    output = json.loads(out) if out.strip() else None
    if output is None and process.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} exited {process.returncode}: {errors[-2000:]}")
    return Measured(
        wall_s=ended - started, cpu_s=usage.ru_utime + usage.ru_stime, peak_rss_mb=usage.ru_maxrss / 1024,
        exit_code=process.returncode, output=output, started=started, ended=ended,
    )


def _with_repository(pythonpath: str | None) -> str:
    """So `python -m benchmarks.naive` imports from any working directory."""
    return os.pathsep.join(filter(None, [str(REPOSITORY), pythonpath]))


def syncctl(config: Path, *args: str, env: dict[str, str]) -> Measured:
    return run_module("syncctl", ["--config", str(config), "--json", *args], env)
