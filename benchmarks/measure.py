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


# The child reports its own peak RSS (VmHWM) as it exits. ru_maxrss would not do: on
# Linux a child started through vfork inherits the parent's high-water mark at exec,
# so a benchmark process holding 300 MB would make every syncctl run look that big.
_REPORTING_PEAK = """
import atexit, os, runpy, sys
def _report():
    with open("/proc/self/status") as status, open(os.environ["SYNCCTL_BENCH_PEAK_FILE"], "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(_report)
module = sys.argv.pop(1)
sys.argv[0] = module
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run_module(module: str, args: list[str], env: dict[str, str]) -> Measured:
    """`python -m module args...`; stdout must be one JSON document (or nothing)."""
    with tempfile.TemporaryFile() as stderr, tempfile.NamedTemporaryFile("r") as peak:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-c", _REPORTING_PEAK, module, *args], stdout=subprocess.PIPE, stderr=stderr,
            env={**os.environ, "PYTHONPATH": _with_repository(os.environ.get("PYTHONPATH")),
                 "SYNCCTL_BENCH_PEAK_FILE": peak.name, **env},
        )
        assert process.stdout is not None
        out = process.stdout.read()
        # wait4, not wait: the CPU time of this child alone.
        _, status, usage = os.wait4(process.pid, 0)
        ended = time.monotonic()
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
        peak_kb = peak.read().strip()
    output = json.loads(out) if out.strip() else None
    if output is None and process.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} exited {process.returncode}: {errors[-2000:]}")
    return Measured(
        wall_s=ended - started, cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=int(peak_kb) / 1024 if peak_kb else float("nan"),
        exit_code=process.returncode, output=output, started=started, ended=ended,
    )


def _with_repository(pythonpath: str | None) -> str:
    """So `python -m benchmarks.naive` imports from any working directory."""
    return os.pathsep.join(filter(None, [str(REPOSITORY), pythonpath]))


def syncctl(config: Path, *args: str, env: dict[str, str]) -> Measured:
    return run_module("syncctl", ["--config", str(config), "--json", *args], env)
