"""demo: run the whole job against the sandbox VTEX with an embedded ERP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from syncctl.cli.context import Globals, handled


def demo(
    ctx: typer.Context,
    workdir: Annotated[Optional[Path], typer.Option("--workdir", help="Keep the demo's config, ERP and state here (default: a new temp dir).")] = None,
) -> None:
    """Run run-all against a local sandbox VTEX and an embedded ERP; show what went where."""
    from syncctl.demo import run_demo
    from syncctl.cli.demo_view import DemoView

    g: Globals = ctx.obj
    out = g.output()
    with handled(out):
        view = DemoView(out)
        code = run_demo(workdir, view.show)
    view.finish(code)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
