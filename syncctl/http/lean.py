"""httpx without two costs per request that syncctl's APIs never need. Together they
were half of a request's CPU in the push benchmark (BENCHMARKS.md).

- PerThreadTransport: one connection pool per sending thread. httpcore's pool,
  shared by the push workers, matches every waiting request against every connection
  under one lock, on each send and again on each release; a pool per thread holds the
  one connection its thread keeps alive: nothing to match, no lock to share.
- CookielessClient: no cookie jar. Channels and carriers authenticate by header;
  httpx would still turn every response into a urllib request to look for cookies.

httpx reads proxy settings from the environment only for the transport it builds
itself, so where one is set (`proxy_in_environment`) HttpClient leaves the transport
to httpx and forgoes PerThreadTransport.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any
from urllib.request import getproxies

import httpx

_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """One per process, as httpx would build it: each loads the CA bundle (~50 ms)."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


def proxy_in_environment() -> bool:
    """True when httpx would send some request through a proxy from the environment
    (HTTP_PROXY, HTTPS_PROXY or ALL_PROXY, unless NO_PROXY=*)."""
    found = getproxies()
    no_proxy = {host.strip() for host in found.get("no", "").split(",")}
    return "*" not in no_proxy and any(found.get(scheme) for scheme in ("http", "https", "all"))


class PerThreadTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._made: list[httpx.HTTPTransport] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._mine().handle_request(request)

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        for transport in made:
            transport.close()

    def _mine(self) -> httpx.HTTPTransport:
        transport: httpx.HTTPTransport | None = getattr(self._local, "transport", None)
        if transport is None:
            transport = httpx.HTTPTransport(verify=shared_ssl_context())
            with self._lock:
                self._made.append(transport)
            self._local.transport = transport
        return transport


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        """Set-Cookie is ignored."""


class CookielessClient(httpx.Client):
    """httpx reads and writes its jar through the `cookies` property only."""

    _none = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._none

    @cookies.setter
    def cookies(self, value: Any) -> None:
        raise TypeError("syncctl's HTTP clients keep no cookies")
