"""The terminal's live display of running jobs (contract §3: progress on a terminal,
none under cron, systemd or --json)."""

from __future__ import annotations

import io

from conftest import Shop
from rich.console import Console

from syncctl.cli.output import Output
from syncctl.cli.progress import JobProgress
from syncctl.jobs import JobOptions
from syncctl.jobs.plan import run_all
from syncctl.jobs.result import JobResult, Outcome


class Recording:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, int]] = []

    def started(self, result: JobResult) -> None:
        self.seen.append(("started", result.channel, result.job, result.sent))

    def finished(self, result: JobResult) -> None:
        self.seen.append(("finished", result.channel, result.job, result.sent))


def test_every_job_is_announced_when_it_starts_and_when_it_ends_with_its_counts(shop: Shop) -> None:
    watch = Recording()
    rt = shop.runtime()
    rt.watch = watch
    try:
        results = run_all(rt, JobOptions())
    finally:
        rt.close()
    jobs = [r.job for r in results]
    assert watch.seen[0::2] == [("started", "vtex-main", job, 0) for job in jobs]
    assert watch.seen[1::2] == [("finished", "vtex-main", r.job, r.sent) for r in results]
    assert any(sent for *_, sent in watch.seen[1::2])  # the counts the display reads moved


def test_the_display_shows_each_job_with_its_counters_and_then_its_outcome() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    result = JobResult("vtex-main", "push-stock", sent=1200, unchanged=30)
    with JobProgress(console) as progress:
        progress.started(result)
        shown_while_running = screen.getvalue()
        result.sent, result.failed = 1500, 2
        result.outcome = Outcome.failed
        progress.finished(result)
        shown_when_done = screen.getvalue()[len(shown_while_running):]
    assert "vtex-main push-stock" in shown_while_running and "sent 1,200  unchanged 30" in shown_while_running
    assert "sent 1,500  unchanged 30  failed 2  failed" in shown_when_done


def test_no_display_under_cron_with_json_or_with_quiet() -> None:
    assert Output().progress() is None  # stdout is not a terminal under pytest, as under cron
    assert Output(json_mode=True).progress() is None
    assert Output(quiet=True).progress() is None
