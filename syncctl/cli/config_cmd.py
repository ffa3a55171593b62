"""config check: validate the file (and, with --online, each channel's credentials)."""

from __future__ import annotations

from typing import Annotated

import typer

from syncctl.cli.context import Globals, handled
from syncctl.errors import SyncctlError
from syncctl.redact import redact

app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)


@app.command("check")
def check(
    ctx: typer.Context,
    online: Annotated[bool, typer.Option("--online", help="Also try each channel's credentials.")] = False,
) -> None:
    """Validate the file: keys, types, ${VAR}s, channel types, warehouses in the ERP."""
    g: Globals = ctx.obj
    out = g.output()
    problems: list[str] = []
    with handled(out):
        rt = g.runtime()
        try:
            rt.check_warehouses(list(rt.config.channels))
            if online:
                for name in rt.config.channels:
                    channel = rt.open_channel(name)
                    try:
                        channel.check_credentials()
                    except SyncctlError as exc:
                        problems.append(f"{name}: {redact(exc)}")
                    finally:
                        channel.http.close()
        finally:
            rt.close()
    if out.json_mode:
        out.document({"config": str(rt.config.source), "ok": not problems, "problems": problems})
    else:
        for problem in problems:
            out.error(problem)
        if not problems:
            out.info(f"{rt.config.source}: ok ({len(rt.config.channels)} channels, {len(rt.config.carriers)} carriers)")
    raise typer.Exit(3 if problems else 0)
