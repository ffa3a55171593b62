"""In-place edits of the configuration file (`channel enable/disable`): only the
one value changes; comments, order, quotes and layout are kept; written through
a temporary file, fsync and rename."""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.util import load_yaml_guess_indent

from syncctl.config.yamlfile import (
    check_flow_depth,
    config_error,
    line_in,
    read_text,
    yaml_errors,
)
from syncctl.domain import Feature


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
    text = read_text(target)
    yaml = YAML(typ="rt")
    yaml.Representer = _NullAsNull
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line or flow mapping
    check_flow_depth(text, str(target))
    with yaml_errors(str(target)):
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
    if not isinstance(mapping.get(key), bool) or line_in(mapping, key) is None:
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
        raise config_error(file, f"no channel named {channel!r}; the channels are: {names or 'none'}")
    block = channels[channel]
    if not isinstance(block, CommentedMap):
        raise config_error(file, f"channels.{channel} is not a mapping; fix it first", line_in(channels, channel))
    return block


def _features_of(block: CommentedMap, file: str) -> CommentedMap:
    """The channel's `features` mapping, created (every supported feature on) if absent."""
    features = block.get("features")
    if isinstance(features, CommentedMap):
        return features
    if features is not None:
        raise config_error(file, "features is not a mapping; fix it first", line_in(block, "features"))
    import syncctl.channels as channels  # the registry imports this module

    type_name = block.get("type")
    if type_name not in channels.channel_types():
        raise config_error(file, f"unknown channel type {type_name!r}; fix it before editing features",
                     line_in(block, "type"))
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
