"""On a terminal, what is running now: one line per job with its counters as they
move, a spinner while it runs and its outcome once done. The lines are cleared when
the command ends, and the results table takes their place. Under cron and systemd
(stdout not a terminal) and with --json there is no progress display at all."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from syncctl.jobs.result import JobResult


class _Counts(ProgressColumn):
    """Read from the job's own result at each refresh, so no job reports progress itself."""

    def render(self, task: Task) -> Text:
        result: JobResult = task.fields["result"]
        counts = f"sent {result.sent:,}  unchanged {result.unchanged:,}"
        if result.failed:
            counts += f"  failed {result.failed:,}"
        if task.finished:
            return Text(f"{counts}  {result.outcome.value}", style="green" if result.exit_code == 0 else "red")
        return Text(counts)


class JobProgress:
    """A `JobWatch` (syncctl.jobs.runner) drawn with Rich."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text="·"), TextColumn("{task.description}"), _Counts(), TimeElapsedColumn(),
            console=console, transient=True, refresh_per_second=4,
        )
        self._tasks: dict[int, int] = {}  # id(result) -> its line

    def __enter__(self) -> JobProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.stop()

    def started(self, result: JobResult) -> None:
        self._tasks[id(result)] = self._progress.add_task(f"{result.channel} {result.job}", total=None, result=result)

    def finished(self, result: JobResult) -> None:
        self._progress.update(self._tasks.pop(id(result)), total=1, completed=1, refresh=True)
