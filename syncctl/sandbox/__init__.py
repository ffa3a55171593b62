"""Fake channel and carrier APIs, used in-process by tests and over loopback by the demo."""

from syncctl.sandbox.faults import FaultRule, Faults, RequestRecord
from syncctl.sandbox.server import RunningServer, serve
from syncctl.sandbox.vtex import FakeVtex

__all__ = ["FakeVtex", "FaultRule", "Faults", "RequestRecord", "RunningServer", "serve"]
