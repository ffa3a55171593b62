"""Check a request against official OpenAPI 3.0 descriptions (VTEX's, in shared/openapi/vtex).

`SpecIndex.problems(method, url, body)` finds the operation by method and path
template across every loaded spec and lists what the request gets wrong: path
parameters, query parameters (required ones missing, undeclared ones sent, values
of the wrong type) and the JSON body against the operation's requestBody schema.
Headers are not checked: the specs declare Content-Type as a required header even
on GETs that carry no body, and credentials as headers of their own.

Schemas are validated with openapi-schema-validator's OAS30Validator; `$ref`s
resolve through a `referencing` registry holding each whole spec, so a schema is
read where it stands, never copied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

VTEX_SPECS = Path(__file__).resolve().parents[2] / "shared" / "openapi" / "vtex"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Pricing lives at https://api.vtex.com/{account}/pricing/...; the store host serves it
# under /api/pricing/... too. Either way the spec's path starts at /pricing.
_PRICING = re.compile(r"^/[^/]+(?P<path>/pricing/.*)$")
_INTEGER = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # "path", "query", "header", "cookie"
    required: bool
    schema_pointer: str | None  # None: the parameter declares no schema


@dataclass(frozen=True)
class Operation:
    spec: str  # the spec's name, e.g. "catalog-api"
    method: str  # upper case
    template: str  # e.g. "/api/catalog/pvt/stockkeepingunit/{skuId}"
    parameters: tuple[Parameter, ...]
    body_pointer: str | None  # the JSON requestBody schema, if the operation takes one
    body_required: bool

    def __str__(self) -> str:
        return f"{self.method} {self.template} ({self.spec})"


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    names: tuple[str, ...]  # the template's parameters, in order
    operation: Operation


class SpecIndex:
    """Operations of several OpenAPI 3.0 specs, found by method and concrete path."""

    def __init__(self, specs: Mapping[str, Mapping[str, Any]]) -> None:
        self._registry: Registry = Registry().with_resources(
            (_uri(name), Resource(contents=spec, specification=DRAFT4)) for name, spec in specs.items()
        )
        self._specs = specs
        self._validators: dict[tuple[str, str], Any] = {}
        routes = [route for name, spec in specs.items() for route in _routes(name, spec)]
        # The most literal template wins: /stockkeepingunit/copy/... before /stockkeepingunit/{skuId}/...
        self._routes = sorted(routes, key=lambda route: len(route.names))

    @classmethod
    def load(cls, folder: Path) -> SpecIndex:
        return cls({path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))})

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation serving `method path` and the raw values of its path parameters."""
        pricing = _PRICING.match(path)
        path = pricing["path"] if pricing else path
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match and route.operation.method == method.upper():
                return route.operation, dict(zip(route.names, match.groups(), strict=True))
        return None

    def problems(self, method: str, url: str, body: str | bytes | None) -> list[str]:
        """What is wrong with this request according to the specs ([] when nothing is)."""
        parts = urlsplit(url)
        found = self.find(method, parts.path)
        if found is None:
            return [f"{method} {parts.path}: no operation in the specs serves this method and path"]
        operation, path_values = found
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        return [
            f"{operation}: {problem}"
            for problem in (
                *self._parameter_problems(operation, "path", {k: unquote(v) for k, v in path_values.items()}),
                *self._parameter_problems(operation, "query", query),
                *self._body_problems(operation, body),
            )
        ]

    def _parameter_problems(self, operation: Operation, location: str, values: Mapping[str, str]) -> Iterable[str]:
        declared = {p.name: p for p in operation.parameters if p.location == location}
        for name in sorted(values.keys() - declared.keys()):
            yield f"{location} parameter {name!r} is not declared"
        for name, parameter in declared.items():
            if name not in values:
                if parameter.required:
                    yield f"required {location} parameter {name!r} is missing"
                continue
            if parameter.schema_pointer is not None:
                schema = self._resolve(operation.spec, parameter.schema_pointer)
                value = _coerce(values[name], schema)
                for error in self._validator(operation.spec, parameter.schema_pointer).iter_errors(value):
                    yield f"{location} parameter {name}={values[name]!r}: {error.message}"

    def _body_problems(self, operation: Operation, body: str | bytes | None) -> Iterable[str]:
        if not body:
            if operation.body_required:
                yield "the operation requires a body and none was sent"
            return
        if operation.body_pointer is None:
            yield "a body was sent but the operation takes no JSON body"
            return
        try:
            instance = json.loads(body)
        except ValueError:
            yield "the body is not JSON"
            return
        for error in self._validator(operation.spec, operation.body_pointer).iter_errors(instance):
            yield f"body{_where(error.absolute_path)}: {error.message}"

    def _validator(self, spec: str, pointer: str) -> Any:
        key = (spec, pointer)
        if key not in self._validators:  # building one is the costly part: once per schema
            self._validators[key] = OAS30Validator(
                {"$ref": f"{_uri(spec)}#{quote(pointer, safe='/~')}"},
                registry=self._registry,
                format_checker=oas30_format_checker,
            )
        return self._validators[key]

    def _resolve(self, spec: str, pointer: str) -> Mapping[str, Any]:
        """The object at `pointer`, following `$ref`s standing there."""
        node = _follow(self._specs[spec], f"#{pointer}")
        while isinstance(node, dict) and "$ref" in node:
            node = _follow(self._specs[spec], node["$ref"])
        return node


@cache
def vtex_specs() -> SpecIndex:
    """The four VTEX specs, loaded once per test session."""
    return SpecIndex.load(VTEX_SPECS)


def _routes(spec_name: str, spec: Mapping[str, Any]) -> Iterable[_Route]:
    for template, path_item in spec["paths"].items():
        names = tuple(re.findall(r"{([^}]+)}", template))
        literal_parts = re.split(r"{[^}]+}", template)
        pattern = re.compile("([^/]+)".join(re.escape(part) for part in literal_parts))
        item_pointer = f"/paths/{_escape(template)}"
        shared = _parameters(spec, path_item.get("parameters") or [], f"{item_pointer}/parameters")
        for method in METHODS:
            if method not in path_item:
                continue
            op_pointer = f"{item_pointer}/{method}"
            definition = path_item[method]
            own = _parameters(spec, definition.get("parameters") or [], f"{op_pointer}/parameters")
            merged = {(p.name, p.location): p for p in (*shared, *own)}  # an operation's own wins
            body_pointer, body_required = _request_body(spec, definition, op_pointer)
            operation = Operation(
                spec_name, method.upper(), template, tuple(merged.values()), body_pointer, body_required
            )
            yield _Route(pattern, names, operation)


def _parameters(spec: Mapping[str, Any], entries: list[Mapping[str, Any]], pointer: str) -> list[Parameter]:
    parameters = []
    for index, entry in enumerate(entries):
        entry_pointer = f"{pointer}/{index}"
        if "$ref" in entry:
            entry_pointer = entry["$ref"][1:]
            entry = _follow(spec, entry["$ref"])
        schema_pointer = f"{entry_pointer}/schema" if "schema" in entry else None
        parameters.append(Parameter(entry["name"], entry["in"], bool(entry.get("required")), schema_pointer))
    return parameters


def _request_body(spec: Mapping[str, Any], definition: Mapping[str, Any], op_pointer: str) -> tuple[str | None, bool]:
    body = definition.get("requestBody")
    if body is None:
        return None, False
    pointer = f"{op_pointer}/requestBody"
    if "$ref" in body:
        pointer, body = body["$ref"][1:], _follow(spec, body["$ref"])
    json_type = next((media for media in body.get("content") or {} if media.startswith("application/json")), None)
    if json_type is None or "schema" not in body["content"][json_type]:
        return None, bool(body.get("required"))
    return f"{pointer}/content/{_escape(json_type)}/schema", bool(body.get("required"))


def _follow(spec: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, not {ref!r}")
    node: Any = spec
    for segment in ref[2:].split("/"):
        node = node[int(segment)] if isinstance(node, list) else node[_unescape(segment)]
    return node


def _coerce(raw: str, schema: Mapping[str, Any]) -> Any:
    """A path or query value as the schema's type, when it reads as one (else the text,
    which then fails the type check)."""
    kind = schema.get("type")
    if kind == "integer" and _INTEGER.fullmatch(raw):
        return int(raw)
    if kind == "number" and _NUMBER.fullmatch(raw):
        return float(raw)
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    return raw


def _where(path: Iterable[Any]) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


def _uri(spec_name: str) -> str:
    return f"urn:openapi:{spec_name}"


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")
