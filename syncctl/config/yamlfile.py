"""Reading the configuration file safely: its size, nesting and aliases bounded,
YAML errors reported with their line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from syncctl.errors import ConfigError, Problem

MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 100_000  # after aliases are expanded; a real config has a few hundred
MAX_DEPTH = 64  # a real config nests about 6 levels; also stops self-referencing aliases

_YAML_HINT = (
    "fix the YAML there: check the indentation and for a missing ':' or closing quote or bracket; "
    'quote values that start with a special character, and inside {...} write "${VAR}" in quotes'
)

_TOO_DEEP = (
    f"the YAML nests deeper than {MAX_DEPTH} levels (or an alias refers to its own parent); simplify it"
)



def config_error(file: object, message: str, line: int | None = None) -> ConfigError:
    """A ConfigError with one problem (for the stages that cannot go on)."""
    return ConfigError([Problem(str(file), line, message)])


def read_text(source: Path) -> str:
    try:
        with source.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise config_error(source, "no such file; copy config.example.yaml there or pass --config PATH") from None
    except OSError as exc:
        raise config_error(source, f"cannot read the file: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise config_error(source, "the file is larger than 1 MiB; is this the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise config_error(source, "the file is not UTF-8 text; save it as UTF-8", line) from None


def parse(text: str, file: str) -> Any:
    """The round-trip tree (it keeps each key's line)."""
    check_flow_depth(text, file)
    with yaml_errors(file):
        return YAML(typ="rt").load(text)


@contextmanager
def yaml_errors(file: str) -> Iterator[None]:
    """Parser errors as ConfigError with the parser's line."""
    try:
        yield
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "syntax error"
        line = mark.line + 1 if mark else None
        raise config_error(file, f"invalid YAML: {what}; {_YAML_HINT}", line) from None
    except YAMLError as exc:
        raise config_error(file, f"invalid YAML: {exc}; {_YAML_HINT}") from None
    except RecursionError:
        raise config_error(file, _TOO_DEEP) from None


# Quoted text and comments, whose brackets are not YAML's.
_NOT_BRACKETS = re.compile(r"'[^'\n]*'|\"(?:[^\"\\\n]|\\.)*\"|(?:^|(?<=\s))#.*", re.MULTILINE)


def check_flow_depth(text: str, file: str) -> None:
    """Refuse deeply nested [ and { before parsing: ruamel takes quadratic time
    scanning them (seconds for a few thousand)."""
    depth = deepest = 0
    for bracket in re.findall(r"[][{}]", _NOT_BRACKETS.sub("", text)):
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise config_error(file, _TOO_DEEP)


def check_size(root: Any, file: str) -> None:
    """Aliases share nodes in the parsed tree; count the values they expand to
    (memoised per node, so a billion-laughs file costs as much as its text)."""
    counted: dict[int, int] = {}

    def count(node: Any, depth: int) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if depth > MAX_DEPTH:
            raise config_error(file, _TOO_DEEP)
        if id(node) not in counted:
            children = node.values() if isinstance(node, dict) else node
            counted[id(node)] = 1 + sum(count(child, depth + 1) for child in children)
        return counted[id(node)]

    if count(root, 0) > MAX_VALUES:
        raise config_error(file, f"the file expands to more than {MAX_VALUES} values through its "
                     "aliases (*name); write the values out or use fewer aliases")


def line_in(parent: Any, key: Any) -> int | None:
    """1-based line of a key (mapping) or an item (sequence); None for merged (<<) keys."""
    try:
        if isinstance(parent, CommentedMap):
            return parent.lc.key(key)[0] + 1
        if isinstance(parent, CommentedSeq):
            return parent.lc.item(key)[0] + 1
    except (KeyError, IndexError, TypeError):
        pass
    return None
