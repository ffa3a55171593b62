"""Every option declared once, as an Annotated alias."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="Config file (default: $SYNCCTL_CONFIG, else the user config dir).")]
StateOpt = Annotated[Optional[Path], typer.Option("--state", help="State file (default: the user state dir).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, nothing else there.")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Print only failures.")]
VerboseOpt = Annotated[bool, typer.Option("-v", "--verbose", help="Print debug detail.")]

ChannelsOpt = Annotated[Optional[list[str]], typer.Option("--channel", help="Channel name (repeatable; default: every channel with the feature).")]
CarriersOpt = Annotated[Optional[list[str]], typer.Option("--carrier", help="Carrier name (repeatable; default: every carrier).")]
SkusOpt = Annotated[Optional[list[str]], typer.Option("--sku", help="Only this SKU (repeatable).")]
FullOpt = Annotated[bool, typer.Option("--full", help="Ignore cursors and hashes: send everything.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would be sent or written; send and write nothing.")]
SinceOpt = Annotated[Optional[str], typer.Option("--since", help="Pull jobs: read from this ISO-8601 time (UTC when it has no zone).")]
AllowDropOpt = Annotated[bool, typer.Option("--allow-drop", help="push-prices: send cuts deeper than max_drop_pct.")]
FeatureOpt = Annotated[Optional[list[str]], typer.Option("--feature", help="Flip this feature instead of auto (repeatable).")]
