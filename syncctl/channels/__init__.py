"""Channel registry: one line per channel type."""

from __future__ import annotations

from importlib import import_module

from syncctl.channels.base import Channel

_TYPES = {
    "vtex": "syncctl.channels.vtex:VtexChannel",
    "mercadolivre": "syncctl.channels.mercadolivre:MercadoLivreChannel",
}


def channel_types() -> list[str]:
    return sorted(_TYPES)


def channel_class(type_name: str) -> type[Channel]:
    """The adapter class of a channel type; KeyError for an unknown type."""
    module, _, attr = _TYPES[type_name].partition(":")
    return getattr(import_module(module), attr)
