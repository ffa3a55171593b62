"""Carrier registry: one line per carrier type."""

from __future__ import annotations

from importlib import import_module

from syncctl.carriers.base import Carrier

_TYPES: dict[str, str] = {
    "correios": "syncctl.carriers.correios:CorreiosCarrier",
    "jadlog": "syncctl.carriers.jadlog:JadlogCarrier",
    "melhorenvio": "syncctl.carriers.melhorenvio:MelhorEnvioCarrier",
}


def carrier_types() -> list[str]:
    return sorted(_TYPES)


def carrier_class(type_name: str) -> type[Carrier]:
    """The adapter class of a carrier type; KeyError for an unknown type."""
    module, _, attr = _TYPES[type_name].partition(":")
    return getattr(import_module(module), attr)
