"""The reliability suite's figures, printed at the end of every run that collected it."""

from __future__ import annotations

import pytest

from reliability import trials


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if trials.FIGURES:
        terminalreporter.write_sep("-", "reliability figures")
        for line in trials.table():
            terminalreporter.write_line(line)
