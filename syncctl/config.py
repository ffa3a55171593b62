"""The configuration file: typed models, loading, and in-place edits.

Loading is three steps, each reporting every problem with file and line:
parse the YAML, interpolate ${VAR} (environment, then $CREDENTIALS_DIRECTORY/VAR),
validate once into the models below (each channel's `credentials` and `options`
by the models its channel type declares).
"""

from __future__ import annotations

import difflib
import io
import os
import re
import tempfile
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.util import load_yaml_guess_indent

from syncctl import paths
from syncctl.domain import Feature
from syncctl.errors import ConfigError, Problem
from syncctl.redact import redact

MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 100_000  # after aliases are expanded; a real config has a few hundred
MAX_DEPTH = 64  # a real config nests about 6 levels; also stops self-referencing aliases

_SQLITE_URL = re.compile(r"^(?P<scheme>sqlite(?:\+\w+)?):///(?P<path>[^?]*)(?P<query>\?.*)?$")
# ${NAME} is replaced; $${NAME} is the escape for a literal ${NAME}.
_VARIABLE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_YAML_HINT = (
    "fix the YAML there: check the indentation and for a missing ':' or closing quote or bracket; "
    'quote values that start with a special character, and inside {...} write "${VAR}" in quotes'
)

_TOO_DEEP = (
    f"the YAML nests deeper than {MAX_DEPTH} levels (or an alias refers to its own parent); simplify it"
)

KeyPath = tuple[str | int, ...]


class Strict(BaseModel):
    """Unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(Strict):
    timeout_s: float = Field(30, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    max_retry_after_s: float = Field(120, gt=0)  # a longer Retry-After ends the channel's run (exit 75)
    rate_per_s: float | None = Field(None, gt=0)  # None: the channel type's default
    burst: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1, le=64)


class HttpOverrides(Strict):
    """Per channel or carrier: any key of the top-level `http` block."""

    timeout_s: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0, le=20)
    max_retry_after_s: float | None = Field(None, gt=0)
    rate_per_s: float | None = Field(None, gt=0)
    burst: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1, le=64)


class StockSettings(Strict):
    from_warehouses: list[str] | None = None  # None: every ERP warehouse
    debit_warehouse: str | None = None
    reserve: int = Field(0, ge=0)


class PriceSettings(Strict):
    price_list: str = "default"
    max_drop_pct: Decimal | None = Field(Decimal(50), ge=0, le=100)  # None: no guard


class OrderSettings(Strict):
    initial_lookback_days: int = Field(7, ge=0, le=365)


class ChannelSettings(Strict):
    name: str
    type: str
    auto: bool = False
    base_url: str | None = None
    credentials: BaseModel  # the channel type's Credentials model (SecretStr fields)
    features: dict[Feature, bool] | None = None  # None: every feature the channel supports
    stock: StockSettings = StockSettings()
    prices: PriceSettings = PriceSettings()
    orders: OrderSettings = OrderSettings()
    options: BaseModel  # the channel type's Options model
    http: HttpOverrides = HttpOverrides()

    def feature_on(self, feature: Feature) -> bool:
        """Switched on in the file (support is the channel type's business)."""
        return self.features is None or self.features.get(feature, False)


class CarrierSettings(Strict):
    name: str
    type: str
    auto: bool = False
    base_url: str | None = None
    credentials: BaseModel
    options: BaseModel
    http: HttpOverrides = HttpOverrides()


class ErpSettings(Strict):
    url: str = "sqlite:///erp.db"  # sqlite paths are relative to the config file's folder
    debits_stock: bool = False  # True: the ERP writes the sale's stock move itself


class StateSettings(Strict):
    path: str | None = None  # None: the platform state dir
    resend_after_h: float = Field(24, gt=0)  # an unchanged item is re-asserted at least this often


class Config(Strict):
    source: Path
    erp: ErpSettings = ErpSettings()
    state: StateSettings = StateSettings()
    http: HttpSettings = HttpSettings()
    channels: dict[str, ChannelSettings] = {}
    carriers: dict[str, CarrierSettings] = {}

    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    def line_of(self, *path: str | int) -> int | None:
        """The line where the key at `path` (e.g. "channels", "vtex-main", "stock")
        was written, or of its nearest written ancestor."""
        return _nearest_line(self._lines, path)

    def http_for(self, overrides: HttpOverrides) -> HttpSettings:
        merged = self.http.model_dump() | overrides.model_dump(exclude_none=True)
        return HttpSettings(**merged)

    def erp_url(self) -> str:
        """`erp.url` with a relative sqlite path resolved against the config's folder
        (`sqlite:////abs`, `sqlite:///:memory:` and other schemes are kept as written)."""
        match = _SQLITE_URL.match(self.erp.url)
        if not match or match["path"].startswith("/") or match["path"] in ("", ":memory:"):
            return self.erp.url
        folder = self.source.parent.resolve()
        return f"{match['scheme']}:///{folder / match['path']}{match['query'] or ''}"

    def state_path(self, override: Path | None = None) -> Path:
        """`override` (--state), else `state.path` (relative to the config's folder),
        else the platform state dir."""
        if override is not None:
            return override
        if self.state.path:
            return self.source.parent.resolve() / Path(self.state.path).expanduser()
        return paths.default_state_path()


class _Unchecked(BaseModel):
    """Stands in for a credentials/options block that failed, so the rest of the
    channel is still validated and every problem is reported in one go."""


# -- loading -----------------------------------------------------------------------------


def load(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate `path`; raise ConfigError listing every problem.
    Registers every credential value with `syncctl.redact.redact`.

    `${NAME}` is replaced in string values (not keys) by `environ[NAME]` (default
    `os.environ`), else by the content of `$CREDENTIALS_DIRECTORY/NAME` less one
    trailing newline; `$${NAME}` stands for a literal `${NAME}`.
    """
    source = Path(path).resolve()
    report = _Report(str(source))
    root = _parse(_read(source), report.file)
    if root is None:  # an empty file: every default
        root = CommentedMap()
    _check_size(root, report.file)
    env = os.environ if environ is None else environ
    data = _TreeReader(report, _Interpolator(env, report)).read(root, ())
    config = _validate_config(data, source, report)
    if report.problems or config is None:
        raise ConfigError(sorted(report.problems, key=lambda p: p.line or 0))
    config._lines = report.lines
    return config


def _error(file: object, message: str, line: int | None = None) -> ConfigError:
    """A ConfigError with one problem (for the stages that cannot go on)."""
    return ConfigError([Problem(str(file), line, message)])


def _read(source: Path) -> str:
    try:
        with source.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _error(source, "no such file; copy config.example.yaml there or pass --config PATH") from None
    except OSError as exc:
        raise _error(source, f"cannot read the file: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _error(source, "the file is larger than 1 MiB; is this the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _error(source, "the file is not UTF-8 text; save it as UTF-8", line) from None


def _parse(text: str, file: str) -> Any:
    """The round-trip tree (it keeps each key's line)."""
    _check_flow_depth(text, file)
    with _yaml_errors(file):
        return YAML(typ="rt").load(text)


@contextmanager
def _yaml_errors(file: str) -> Iterator[None]:
    """Parser errors as ConfigError with the parser's line."""
    try:
        yield
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "syntax error"
        line = mark.line + 1 if mark else None
        raise _error(file, f"invalid YAML: {what}; {_YAML_HINT}", line) from None
    except YAMLError as exc:
        raise _error(file, f"invalid YAML: {exc}; {_YAML_HINT}") from None
    except RecursionError:
        raise _error(file, _TOO_DEEP) from None


# Quoted text and comments, whose brackets are not YAML's.
_NOT_BRACKETS = re.compile(r"'[^'\n]*'|\"(?:[^\"\\\n]|\\.)*\"|(?:^|(?<=\s))#.*", re.MULTILINE)


def _check_flow_depth(text: str, file: str) -> None:
    """Refuse deeply nested [ and { before parsing: ruamel takes quadratic time
    scanning them (seconds for a few thousand)."""
    depth = deepest = 0
    for bracket in re.findall(r"[][{}]", _NOT_BRACKETS.sub("", text)):
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise _error(file, _TOO_DEEP)


def _check_size(root: Any, file: str) -> None:
    """Aliases share nodes in the parsed tree; count the values they expand to
    (memoised per node, so a billion-laughs file costs as much as its text)."""
    counted: dict[int, int] = {}

    def count(node: Any, depth: int) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if depth > MAX_DEPTH:
            raise _error(file, _TOO_DEEP)
        if id(node) not in counted:
            children = node.values() if isinstance(node, dict) else node
            counted[id(node)] = 1 + sum(count(child, depth + 1) for child in children)
        return counted[id(node)]

    if count(root, 0) > MAX_VALUES:
        raise _error(file, f"the file expands to more than {MAX_VALUES} values through its "
                     "aliases (*name); write the values out or use fewer aliases")


def _nearest_line(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


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
        self.problems.append(Problem(self.file, _nearest_line(self.lines, path), message))


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
        line = _line_in(parent, key)
        if line is not None:
            self.report.lines[path] = line
        return self.read(value, path)


def _line_in(parent: Any, key: Any) -> int | None:
    """1-based line of a key (mapping) or an item (sequence); None for merged (<<) keys."""
    try:
        if isinstance(parent, CommentedMap):
            return parent.lc.key(key)[0] + 1
        if isinstance(parent, CommentedSeq):
            return parent.lc.item(key)[0] + 1
    except (KeyError, IndexError, TypeError):
        pass
    return None


def _plain_scalar(value: Any) -> Any:
    """ruamel's scalar subclasses (kept for round-tripping) as the plain Python types."""
    if isinstance(value, ScalarBoolean):
        return bool(value)
    for plain in (bool, str, int, float):
        if isinstance(value, plain):
            return plain(value)
    return value


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


# -- editing -----------------------------------------------------------------------------


def set_flag(path: Path, channel: str, value: bool, feature: Feature | None = None) -> None:
    """Set `auto` (or `features.<feature>`) of one channel in the file itself,
    keeping comments, key order and formatting; write atomically.

    When the key is already there with a true/false value, only that word changes
    (byte for byte, the rest of the file is kept). Otherwise ruamel adds the key and
    writes the file again: comments, order, quotes and flow style survive; nulls are
    written `null` and block sequences take the indentation of the file's first one.
    `auto` is added after `type`. A channel without `features` (or `features: null`)
    exchanges every feature its type supports, so a new `features` mapping lists each
    supported feature as true before `feature` is set: the others keep their meaning.
    Symlinks are followed: the file they point to is replaced.
    """
    target = Path(path).resolve()
    text = _read(target)
    yaml = YAML(typ="rt")
    yaml.Representer = _NullAsNull
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line or flow mapping
    _check_flow_depth(text, str(target))
    with _yaml_errors(str(target)):
        root, sequence_indent, dash_offset = load_yaml_guess_indent(text, yaml=yaml)
    mapping_indent = _mapping_indent(root) or 2
    yaml.indent(mapping=mapping_indent, sequence=sequence_indent or mapping_indent, offset=dash_offset or 0)

    block = _channel_block(root, channel, str(target))
    if feature is None:
        mapping, key = block, "auto"
    else:
        mapping, key = _features_of(block, str(target)), Feature(feature).value
    edited = _replace_bool_word(text, mapping, key, value)
    if edited is None:
        _set_key(mapping, key, value, after=("type",))
        edited = _dump(yaml, root, text)
    _write_atomically(target, edited)


_BOOL_WORD = re.compile(r"(?:true|false|True|False|TRUE|FALSE)(?=[\s,}#]|$)")


def _replace_bool_word(text: str, mapping: CommentedMap, key: str, value: bool) -> str | None:
    """`text` with the boolean written for `key` replaced in place; None when the key
    is not written there as a plain true/false (absent, merged, anchored, quoted)."""
    if not isinstance(mapping.get(key), bool) or _line_in(mapping, key) is None:
        return None
    line_number, column = mapping.lc.value(key)
    lines = text.splitlines(keepends=True)
    word = _BOOL_WORD.match(lines[line_number], column)
    if word is None:
        return None
    line = lines[line_number]
    lines[line_number] = line[:column] + ("true" if value else "false") + line[word.end():]
    return "".join(lines)


def _channel_block(root: Any, channel: str, file: str) -> CommentedMap:
    channels = root.get("channels") if isinstance(root, dict) else None
    if not isinstance(channels, dict) or channel not in channels:
        names = ", ".join(map(str, channels)) if isinstance(channels, dict) else ""
        raise _error(file, f"no channel named {channel!r}; the channels are: {names or 'none'}")
    block = channels[channel]
    if not isinstance(block, CommentedMap):
        raise _error(file, f"channels.{channel} is not a mapping; fix it first", _line_in(channels, channel))
    return block


def _features_of(block: CommentedMap, file: str) -> CommentedMap:
    """The channel's `features` mapping, created (every supported feature on) if absent."""
    features = block.get("features")
    if isinstance(features, CommentedMap):
        return features
    if features is not None:
        raise _error(file, "features is not a mapping; fix it first", _line_in(block, "features"))
    import syncctl.channels as channels  # the registry imports this module

    type_name = block.get("type")
    if type_name not in channels.channel_types():
        raise _error(file, f"unknown channel type {type_name!r}; fix it before editing features",
                     _line_in(block, "type"))
    supported = channels.channel_class(type_name).supported
    features = CommentedMap((feature.value, True) for feature in Feature if feature in supported)
    features.fa.set_flow_style()
    _set_key(block, "features", features, after=("auto", "type"))
    return features


def _set_key(mapping: CommentedMap, key: str, value: Any, after: tuple[str, ...]) -> None:
    if key in mapping:
        mapping[key] = value
        return
    keys = list(mapping)
    anchor = next((k for k in after if k in mapping), None)
    mapping.insert(keys.index(anchor) + 1 if anchor else len(keys), key, value)


class _NullAsNull(RoundTripRepresenter):
    """Writes None as `null`, as the example config does (ruamel's default is empty)."""

    def represent_none(self, data: None) -> Any:
        return self.represent_scalar("tag:yaml.org,2002:null", "null")


_NullAsNull.add_representer(type(None), _NullAsNull.represent_none)

# Comments, directives and the `---` line before the document: ruamel drops them.
_DOCUMENT_START = re.compile(r"\A(?:[ \t]*(?:[#%].*)?\n)*---[ \t]*(?:#.*)?\n")


def _dump(yaml: YAML, root: Any, original: str) -> str:
    out = io.StringIO()
    yaml.dump(root, out)
    text = out.getvalue()
    header = _DOCUMENT_START.match(original)
    if header:
        text = header[0] + _DOCUMENT_START.sub("", text, count=1)
    return text


def _mapping_indent(node: Any) -> int | None:
    """How far the file indents a nested block mapping under its key."""
    if not isinstance(node, CommentedMap):
        return None
    for key, value in node.items():
        if isinstance(value, CommentedMap) and value and not value.fa.flow_style():
            key_line, key_column = node.lc.key(key)
            if value.lc.line > key_line:
                return value.lc.col - key_column
        nested = _mapping_indent(value)
        if nested:
            return nested
    return None


def _write_atomically(target: Path, text: str) -> None:
    """Temporary file in the same folder, fsync, rename over: the file is always whole."""
    mode = target.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
