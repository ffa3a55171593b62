"""Loading: parse the YAML, interpolate ${VAR} (environment, then
$CREDENTIALS_DIRECTORY/VAR), validate once into the models (each channel's
`credentials` and `options` by the models its channel type declares). Every
problem is reported with file and line."""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarbool import ScalarBoolean

from syncctl.config.models import (
    CarrierSettings,
    ChannelSettings,
    Config,
    KeyPath,
    nearest_line,
)
from syncctl.config.yamlfile import check_size, line_in, parse, read_text
from syncctl.domain import Feature
from syncctl.errors import ConfigError, Problem
from syncctl.redact import redact

# ${NAME} is replaced; $${NAME} is the escape for a literal ${NAME}.
_VARIABLE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate `path`; raise ConfigError listing every problem.
    Registers every credential value with `syncctl.redact.redact`.

    `${NAME}` is replaced in string values (not keys) by `environ[NAME]` (default
    `os.environ`), else by the content of `$CREDENTIALS_DIRECTORY/NAME` less one
    trailing newline; `$${NAME}` stands for a literal `${NAME}`.
    """
    source = Path(path).resolve()
    report = _Report(str(source))
    root = parse(read_text(source), report.file)
    if root is None:  # an empty file: every default
        root = CommentedMap()
    check_size(root, report.file)
    env = os.environ if environ is None else environ
    data = _TreeReader(report, _Interpolator(env, report)).read(root, ())
    config = _validate_config(data, source, report)
    if report.problems or config is None:
        raise ConfigError(sorted(report.problems, key=lambda p: p.line or 0))
    config._lines = report.lines
    return config


def _where(path: KeyPath) -> str:
    return ".".join(str(part) for part in path) or "the top level"


def _suggest(word: object, choices: list[str]) -> str:
    """'; did you mean 'x'?' or '' (for appending to a message)."""
    match = difflib.get_close_matches(str(word), choices, n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


@dataclass
class _Report:
    """Problems found so far, and the line of every key (1-based)."""

    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Values left as `${VAR}` text: problems found later at these paths are only echoes.
    unresolved: set[KeyPath] = field(default_factory=set)

    def add(self, path: KeyPath, message: str) -> None:
        if path in self.unresolved:
            return
        self.problems.append(Problem(self.file, nearest_line(self.lines, path), message))


@dataclass
class _Interpolator:
    environ: Mapping[str, str]
    report: _Report

    def __call__(self, text: str, path: KeyPath) -> str:
        def replace(match: re.Match[str]) -> str:
            if match[1]:
                return match[0][1:]
            value = self._lookup(match[2], path)
            return match[0] if value is None else value

        return _VARIABLE.sub(replace, text)

    def _lookup(self, name: str, path: KeyPath) -> str | None:
        if name in self.environ:
            return self.environ[name]
        folder = self.environ.get("CREDENTIALS_DIRECTORY")
        if folder:
            try:
                return (Path(folder) / name).read_text(encoding="utf-8").removesuffix("\n")
            except FileNotFoundError:
                pass
            except (OSError, UnicodeDecodeError) as exc:
                return self._fail(path, f"cannot read ${{{name}}} in {_where(path)} from "
                                  f"$CREDENTIALS_DIRECTORY/{name}: {exc}; fix that file")
        return self._fail(path, f"${{{name}}} in {_where(path)} is not set; export {name}=... "
                          f"or provide it via LoadCredential (a file {name} in $CREDENTIALS_DIRECTORY)")

    def _fail(self, path: KeyPath, message: str) -> None:
        self.report.add(path, message)
        self.report.unresolved.add(path)


@dataclass
class _TreeReader:
    """Turns the round-trip tree into plain data, recording each key's line and
    interpolating every string value on the way."""

    report: _Report
    interpolate: Callable[[str, KeyPath], str]

    def read(self, node: Any, path: KeyPath) -> Any:
        if isinstance(node, dict):
            return {
                _plain_scalar(key): self._child(node, key, value, path + (_plain_scalar(key),))
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [self._child(node, index, item, path + (index,)) for index, item in enumerate(node)]
        if isinstance(node, str):
            return self.interpolate(str(node), path)
        return _plain_scalar(node)

    def _child(self, parent: Any, key: Any, value: Any, path: KeyPath) -> Any:
        line = line_in(parent, key)
        if line is not None:
            self.report.lines[path] = line
        return self.read(value, path)


def _plain_scalar(value: Any) -> Any:
    """ruamel's scalar subclasses (kept for round-tripping) as the plain Python types."""
    if isinstance(value, ScalarBoolean):
        return bool(value)
    for plain in (bool, str, int, float):
        if isinstance(value, plain):
            return plain(value)
    return value


class _Unchecked(BaseModel):
    """Stands in for a credentials/options block that failed, so the rest of the
    channel is still validated and every problem is reported in one go."""


# -- validation --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """Channels or carriers: where they live in the file and how their types are found."""

    section: str
    noun: str
    settings: type[BaseModel]
    types: Callable[[], list[str]]
    adapter: Callable[[str], Any]
    rules: tuple[Callable[[_Report, KeyPath, Any, Any], None], ...] = ()


def _kinds() -> tuple[_Kind, ...]:
    # Imported here: the registries import the adapters, which import this module.
    import syncctl.carriers as carriers
    import syncctl.channels as channels

    return (
        _Kind("channels", "channel", ChannelSettings, channels.channel_types, channels.channel_class,
              rules=(_debit_warehouse_rule,)),
        _Kind("carriers", "carrier", CarrierSettings, carriers.carrier_types, carriers.carrier_class),
    )


def _debit_warehouse_rule(report: _Report, path: KeyPath, adapter: Any, settings: ChannelSettings) -> None:
    pulls_orders = Feature.orders in adapter.supported and settings.feature_on(Feature.orders)
    if pulls_orders and not settings.stock.debit_warehouse:
        report.add(path + ("stock", "debit_warehouse"),
                   f"channel {settings.name!r} pulls orders but has no stock.debit_warehouse; add it "
                   "(the ERP warehouse each sale is debited from) or set `orders: false` in its features")


def _validate_config(data: Any, source: Path, report: _Report) -> Config | None:
    if not isinstance(data, dict):
        report.add((), "the file must be a mapping of keys (erp, state, http, channels, carriers)")
        return None
    data = dict(data)
    _reject_implied_key(report, data, (), "source", "it is always the file itself")
    sections: dict[str, dict[str, BaseModel]] = {}
    for kind in _kinds():
        blocks = data.pop(kind.section, None) or {}
        if not isinstance(blocks, dict):
            report.add((kind.section,), f"{kind.section} must map {kind.noun} names to their settings")
            continue
        validated = {name: _adapter_block(report, kind, name, raw) for name, raw in blocks.items()}
        sections[kind.section] = {name: block for name, block in validated.items() if block is not None}
    base = _validate(report, Config, {**data, "source": source}, ())
    if base is None or report.problems:
        return None
    return base.model_copy(update=sections)


def _adapter_block(report: _Report, kind: _Kind, name: str, raw: Any) -> BaseModel | None:
    path: KeyPath = (kind.section, name)
    if not isinstance(raw, dict):
        report.add(path, f"{_where(path)} must be a mapping of settings, starting with `type:`")
        return None
    _register_secrets(report, raw.get("credentials"), path + ("credentials",))
    _reject_implied_key(report, raw, path, "name", f"a {kind.noun}'s name is its key under {kind.section}")
    adapter = _adapter_class(report, kind, path, raw.get("type"))
    if adapter is None:
        return None
    credentials = _validate(report, adapter.Credentials, raw.get("credentials") or {},
                            path + ("credentials",), secret=True)
    options = _validate(report, adapter.Options, raw.get("options") or {}, path + ("options",))
    fields = {
        **raw,
        "name": name,
        "credentials": _Unchecked() if credentials is None else credentials,
        "options": _Unchecked() if options is None else options,
    }
    settings = _validate(report, kind.settings, fields, path)
    if settings is None or credentials is None or options is None:
        return None
    for rule in kind.rules:
        rule(report, path, adapter, settings)
    return settings


def _adapter_class(report: _Report, kind: _Kind, path: KeyPath, type_name: Any) -> Any:
    known = kind.types()
    listing = f"known types: {', '.join(known) or 'none yet'}"
    if type_name is None:
        report.add(path, f"{kind.noun} {path[-1]!r} has no type; add `type: NAME` ({listing})")
        return None
    if type_name not in known:
        report.add(path + ("type",), f"unknown {kind.noun} type {type_name!r} in {_where(path)}"
                   f"{_suggest(type_name, known)}; {listing}")
        return None
    return kind.adapter(type_name)


def _reject_implied_key(report: _Report, raw: dict[Any, Any], path: KeyPath, key: str, why: str) -> None:
    if key in raw:
        report.add(path + (key,), f"unknown key {key!r} in {_where(path)} ({why}); remove it")
        del raw[key]


def _register_secrets(report: _Report, node: Any, path: KeyPath) -> None:
    """Every string under `credentials`, valid or not; not a `${VAR}` left unresolved,
    which would mask the variable's name in the very message that asks for it."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        _register_secrets(report, value, path + (key,))
    if isinstance(node, str) and path not in report.unresolved:
        redact.add(node)


def _validate(
    report: _Report, model: type[BaseModel], data: Any, path: KeyPath, *, secret: bool = False
) -> Any:
    """`model` validated from `data`, or None with every error reported at its key's line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            report.add(path + loc, _describe(error, model, path, secret=secret))
        return None


_FRIENDLY = {
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
}


def _describe(error: Any, model: type[BaseModel], path: KeyPath, *, secret: bool) -> str:
    """A pydantic error as a sentence that says what to do. Values of secret
    blocks are never echoed."""
    loc: KeyPath = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = [key for key in _keys_at(model, loc[:-1]) if key not in ("name", "source")]
        hint = _suggest(loc[-1], allowed) or f"; remove it (allowed here: {', '.join(allowed)})"
        return f"unknown key {loc[-1]!r} in {_where(path + loc[:-1])}{hint}"
    if kind == "missing":
        return f"missing key {loc[-1]!r} in {_where(path + loc[:-1])}; add it"
    reason = _FRIENDLY.get(kind) or error["msg"][:1].lower() + error["msg"][1:]
    if loc and loc[-1] == "[key]":
        return f"invalid key {loc[-2]!r} in {_where(path + loc[:-2])}: {reason}; correct it"
    value = error.get("input")
    shown = "" if secret or isinstance(value, (dict, list)) else f" (got {value!r})"
    return f"invalid value for {_where(path + loc)}: {reason}{shown}; correct it"


def _keys_at(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """The keys the model accepts in the mapping at `loc` (for suggestions)."""
    annotation: Any = model
    for part in loc:
        annotation = _without_none(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                return []
            annotation = annotation.model_fields[str(part)].annotation
        elif get_origin(annotation) in (dict, list):
            annotation = get_args(annotation)[-1]
        else:
            return []
    annotation = _without_none(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation
