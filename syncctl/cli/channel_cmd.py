"""channel list|show|enable|disable: the automatic-integration switch and features."""

from __future__ import annotations

import typer

from syncctl import config as config_mod
from syncctl.channels import channel_class
from syncctl.cli.context import Globals, handled
from syncctl.cli.options import FeatureOpt
from syncctl.domain import Feature
from syncctl.errors import ConfigError

app = typer.Typer(help="List channels, show one, switch automatic integration or a feature.", no_args_is_help=True)


def _features(settings) -> dict[str, str]:
    supported = channel_class(settings.type).supported
    return {
        f.value: ("on" if settings.feature_on(f) else "off") if f in supported else "unsupported"
        for f in Feature
    }


@app.command("list")
def list_channels(ctx: typer.Context) -> None:
    """Every configured channel, its type, auto switch and features."""
    g: Globals = ctx.obj
    out = g.output()
    with handled(out):
        config = g.load_config()
    rows = [
        {"name": name, "type": s.type, "auto": s.auto, "features": _features(s)}
        for name, s in config.channels.items()
    ]
    if out.json_mode:
        out.document({"channels": rows})
        return
    for row in rows:
        on = [f for f, v in row["features"].items() if v == "on"]
        out.info(f"{row['name']} ({row['type']}): auto={'yes' if row['auto'] else 'no'} features={','.join(on) or '-'}")


@app.command("show")
def show(ctx: typer.Context, name: str) -> None:
    """One channel's settings (credentials masked)."""
    g: Globals = ctx.obj
    out = g.output()
    with handled(out):
        config = g.load_config()
        settings = _settings(config, name)
    doc = settings.model_dump(mode="json", exclude={"credentials"})
    doc["credentials"] = {key: "***" for key in type(settings.credentials).model_fields}
    doc["features"] = _features(settings)
    if out.json_mode:
        out.document(doc)
        return
    for key, value in doc.items():
        out.info(f"{key}: {value}")


def _flip(ctx: typer.Context, name: str, value: bool, features: list[str] | None) -> None:
    g: Globals = ctx.obj
    out = g.output()
    with handled(out):
        config = g.load_config()
        settings = _settings(config, name)
        chosen = [_feature(f, settings) for f in features or []]
        for feature in chosen or [None]:
            config_mod.set_flag(config.source, name, value, feature)
    what = ", ".join(f"features.{f.value}" for f in chosen) or "auto"
    out.info(f"{name}: {what} set to {'true' if value else 'false'} in {config.source}")


@app.command("enable")
def enable(ctx: typer.Context, name: str, feature: FeatureOpt = None) -> None:
    """Switch automatic integration on (or, with --feature, one feature)."""
    _flip(ctx, name, True, feature)


@app.command("disable")
def disable(ctx: typer.Context, name: str, feature: FeatureOpt = None) -> None:
    """Switch automatic integration off (or, with --feature, one feature)."""
    _flip(ctx, name, False, feature)


@app.command("auth")
def auth(ctx: typer.Context, name: str) -> None:
    """OAuth channels: store the first token pair (no channel type needs it yet)."""
    g: Globals = ctx.obj
    out = g.output()
    with handled(out):
        config = g.load_config()
        settings = _settings(config, name)
        raise ConfigError(f"{name} ({settings.type}) authenticates with static keys: nothing to store")


def _settings(config, name: str):
    if name not in config.channels:
        raise ConfigError(f"unknown channel {name!r} (configured: {', '.join(config.channels) or 'none'})")
    return config.channels[name]


def _feature(value: str, settings) -> Feature:
    try:
        feature = Feature(value)
    except ValueError:
        raise ConfigError(f"unknown feature {value!r} (one of: {', '.join(f.value for f in Feature)})") from None
    if feature not in channel_class(settings.type).supported:
        raise ConfigError(f"{settings.type} has no {feature.value} feature")
    return feature
