"""Global options, and the one table that turns errors into messages and exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer

from syncctl import config as config_mod
from syncctl.cli.output import Output
from syncctl.config import Config
from syncctl.errors import AuthError, ConfigError, ErpError, Locked, SyncctlError, TransientError
from syncctl.paths import default_config_path
from syncctl.runtime import Runtime

GLOBAL_FLAGS = {"--json", "-q", "--quiet", "-v", "--verbose"}
GLOBAL_OPTIONS = {"--config", "--state"}

ERROR_EXIT = (  # first match wins
    (ConfigError, 2),
    (AuthError, 3),
    (Locked, 75),
    (TransientError, 75),
    (ErpError, 1),
    (SyncctlError, 1),
)


@dataclass
class Globals:
    config: Path | None = None
    state: Path | None = None
    json: bool = False
    quiet: bool = False
    verbose: bool = False

    def output(self) -> Output:
        return Output(json_mode=self.json, quiet=self.quiet, verbose=self.verbose)

    def config_path(self) -> Path:
        return self.config or default_config_path()

    def load_config(self) -> Config:
        return config_mod.load(self.config_path())

    def runtime(self) -> Runtime:
        config = self.load_config()
        return Runtime(config=config, state_path=config.state_path(self.state))


@contextmanager
def handled(out: Output) -> Iterator[None]:
    """Turn a SyncctlError into its message and exit code."""
    try:
        yield
    except SyncctlError as exc:
        code = next(code for kind, code in ERROR_EXIT if isinstance(exc, kind))
        if out.json_mode:
            out.document({"error": str(exc), "exit_code": code})
        else:
            out.error(f"syncctl: {exc}")
        raise typer.Exit(code) from None
