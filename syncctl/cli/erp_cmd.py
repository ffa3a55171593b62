"""erp init | check: create, or verify, the integration schema at erp.url."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from syncctl.cli.context import Globals, handled
from syncctl.erp import check_schema, init_schema
from syncctl.erp.db import shown_url

app = typer.Typer(help="Create or verify the ERP integration schema.", no_args_is_help=True)

UrlOpt = Annotated[Optional[str], typer.Option("--url", help="ERP database URL (default: erp.url from the config).")]


def _url(g: Globals, url: str | None) -> str:
    return url or g.load_config().erp_url()


@app.command("init")
def init(ctx: typer.Context, url: UrlOpt = None) -> None:
    """Create the integration schema (tables and the stock_balances view)."""
    g: Globals = ctx.obj
    out = g.output()
    with handled(out):
        target = _url(g, url)
        init_schema(target)
    if out.json_mode:
        out.document({"url": shown_url(target), "created": True})
    else:
        out.info(f"ERP schema ready at {shown_url(target)}")


@app.command("check")
def check(ctx: typer.Context, url: UrlOpt = None) -> None:
    """Verify the ERP exposes every table, view and column syncctl uses."""
    g: Globals = ctx.obj
    out = g.output()
    with handled(out):
        target = _url(g, url)
        problems = check_schema(target)
    if out.json_mode:
        out.document({"url": shown_url(target), "ok": not problems, "problems": problems})
    else:
        for problem in problems:
            out.error(problem)
        if not problems:
            out.info(f"{shown_url(target)}: every table, view and column is there")
    raise typer.Exit(2 if problems else 0)
