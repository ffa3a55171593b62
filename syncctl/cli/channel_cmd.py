"""channel list|show|enable|disable|auth: the automatic-integration switch, features, OAuth tokens."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from syncctl import config as config_mod
from syncctl.channels import channel_class
from syncctl.channels.base import Channel
from syncctl.cli.context import Globals, handled
from syncctl.cli.options import FeatureOpt
from syncctl.domain import Feature
from syncctl.errors import ConfigError
from syncctl.redact import redact

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


CodeOpt = Annotated[Optional[str], typer.Option(
    "--code", help="The authorization code from the app's redirect (?code=...); '-' reads it from stdin.")]
RefreshTokenOpt = Annotated[Optional[str], typer.Option(
    "--refresh-token", help="A refresh token instead of a code; '-' reads it from stdin.")]
CodeVerifierOpt = Annotated[Optional[str], typer.Option(
    "--code-verifier", help="The PKCE code_verifier, when the app has PKCE on.")]


@app.command("auth")
def auth(
    ctx: typer.Context, name: str, code: CodeOpt = None, refresh_token: RefreshTokenOpt = None,
    code_verifier: CodeVerifierOpt = None,
) -> None:
    """OAuth channels (Mercado Livre): trade an authorization code, or a refresh token,
    for the first token pair and store it in the state file. Needed once; syncctl
    rotates the pair from then on."""
    g: Globals = ctx.obj
    out = g.output()
    with handled(out):
        rt = g.runtime()
        try:
            settings = _settings(rt.config, name)
            if channel_class(settings.type).authorize is Channel.authorize:
                raise ConfigError(f"{name} ({settings.type}) authenticates with static keys: nothing to store")
            channel = rt.open_channel(name)
            try:
                said = channel.authorize(
                    code=_secret(code), refresh_token=_secret(refresh_token), code_verifier=_secret(code_verifier)
                )
            finally:
                channel.close()
                channel.http.close()
        finally:
            rt.close()
    if out.json_mode:
        out.document({"channel": name, "stored": said})
    else:
        out.info(f"{name}: {said}")


def _secret(value: str | None) -> str | None:
    """A value given on the command line, or read from stdin for '-' (kept out of argv
    and shell history); never printed."""
    if value == "-":
        value = sys.stdin.readline().strip()
    if value:
        redact.add(value)
    return value or None


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
