"""The configuration file: typed models (models.py), loading and validation
(loading.py, reading through yamlfile.py), and in-place edits (editing.py)."""

from syncctl.config.editing import set_flag
from syncctl.config.loading import load
from syncctl.config.models import (
    CarrierSettings,
    ChannelSettings,
    Config,
    ErpSettings,
    HttpOverrides,
    HttpSettings,
    OrderSettings,
    PriceSettings,
    StateSettings,
    StockSettings,
    Strict,
)

__all__ = [
    "CarrierSettings", "ChannelSettings", "Config", "ErpSettings", "HttpOverrides", "HttpSettings",
    "OrderSettings", "PriceSettings", "StateSettings", "StockSettings", "Strict", "load", "set_flag",
]
