"""One output facade: Rich tables on a terminal, plain level-first lines under
cron/systemd, one JSON document with --json. Everything printed is redacted."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from syncctl.cli.progress import JobProgress
from syncctl.jobs.result import JobResult, Outcome
from syncctl.redact import RedactingFilter, redact


class Output:
    def __init__(self, *, json_mode: bool = False, quiet: bool = False, verbose: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self.tty = sys.stdout.isatty() and not json_mode
        self.console = Console(highlight=False, soft_wrap=True) if self.tty else None
        self._setup_logging()

    def _setup_logging(self) -> None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        root = logging.getLogger("syncctl")
        root.handlers[:] = [handler]
        root.propagate = False
        root.setLevel(logging.DEBUG if self.verbose else logging.WARNING if self.quiet else logging.INFO)

    # -- plain messages --------------------------------------------------------------
    def info(self, text: str) -> None:
        if self.quiet or self.json_mode:
            return
        self._line("INFO", text)

    def error(self, text: str) -> None:
        print(redact(text), file=sys.stderr)

    def _line(self, level: str, text: str) -> None:
        text = redact(text)
        if self.console is not None:
            self.console.print(text, markup=False)
        else:
            print(f"{level} {text}")

    def document(self, doc: Any) -> None:
        """--json: the one JSON document on stdout."""
        print(redact(json.dumps(doc, ensure_ascii=False, indent=None, default=str)))

    def progress(self) -> JobProgress | None:
        """The live display of running jobs: on a terminal only, and not with -q."""
        return JobProgress(self.console) if self.console is not None and not self.quiet else None

    # -- job results -------------------------------------------------------------------
    def results(self, command: str, started: datetime, finished: datetime, results: list[JobResult], exit_code: int) -> None:
        if self.json_mode:
            self.document({
                "command": command,
                "started_at": _iso(started),
                "finished_at": _iso(finished),
                "exit_code": exit_code,
                "results": [r.as_json() for r in results],
            })
            return
        quiet_ok = self.quiet and exit_code == 0
        if quiet_ok:
            return
        if self.console is not None:
            self._table(results)
        else:
            for r in results:
                level = "INFO" if r.exit_code == 0 and not r.failures else "ERROR" if r.outcome in (Outcome.failed, Outcome.error, Outcome.auth) else "WARNING"
                if self.quiet and level == "INFO":
                    continue
                self._line(level, _summary(r))
        for r in results:
            for failure in r.failures:
                self._line("ERROR", f"{r.channel} {r.job} {failure.key}: {failure.error} (attempts: {failure.attempts})")
            if not self.quiet:
                for note in r.notes:
                    self._line("INFO", f"{r.channel} {r.job}: {note}")
                for plan in r.planned:
                    self._line("INFO", f"{r.channel} {r.job} would send {json.dumps(plan, ensure_ascii=False, default=str)}")

    def _table(self, results: list[JobResult]) -> None:
        table = Table(show_edge=False, header_style="bold")
        for column in ("channel", "job", "result", "sent", "unchanged", "failed", "skipped", "note"):
            table.add_column(column, justify="right" if column in ("sent", "unchanged", "failed", "skipped") else "left")
        for r in results:
            style = {0: "green", 1: "red", 3: "red", 75: "yellow"}.get(r.exit_code, "")
            table.add_row(
                r.channel, r.job, f"[{style}]{r.outcome.value}[/]" if style else r.outcome.value,
                str(r.sent), str(r.unchanged), str(r.failed), str(r.skipped), redact(r.message or ""),
            )
        self.console.print(table)


def _summary(r: JobResult) -> str:
    text = (f"{r.channel} {r.job}: {r.outcome.value} sent={r.sent} unchanged={r.unchanged} "
            f"failed={r.failed} skipped={r.skipped}")
    return f"{text} ({r.message})" if r.message else text


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
