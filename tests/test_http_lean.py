"""syncctl/http/lean.py and the URL join in HttpClient: the per-request work the push
benchmark showed syncctl does not need, gone without changing what is sent."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from benchmarks.serving import KeepAliveServer
from syncctl.http import HttpClient
from syncctl.http.lean import CookielessClient, PerThreadTransport, proxy_in_environment
from syncctl.sandbox.server import serve


def client_port(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answers with the client's port: one per connection."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["REMOTE_PORT"].encode()]


@pytest.fixture
def server() -> Any:
    running = KeepAliveServer(client_port)
    yield running
    running.stop()


def test_each_thread_keeps_its_own_connection_alive(server: KeepAliveServer) -> None:
    transport = PerThreadTransport()
    client = httpx.Client(base_url=server.url, transport=transport)

    def ports(count: int) -> set[str]:
        return {client.get("/").text for _ in range(count)}

    assert len(ports(3)) == 1  # kept alive, not reopened
    per_thread: list[set[str]] = []
    threads = [threading.Thread(target=lambda: per_thread.append(ports(3))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(seen) == 1 for seen in per_thread)
    assert len(set().union(*per_thread)) == 3  # no two threads share a connection
    client.close()


def test_a_cookie_the_remote_sets_is_never_sent_back() -> None:
    sent_cookies: list[str | None] = []

    def remote(request: httpx.Request) -> httpx.Response:
        sent_cookies.append(request.headers.get("Cookie"))
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, json=True)

    client = CookielessClient(base_url="http://api.test", transport=httpx.MockTransport(remote))
    client.get("/a")
    client.get("/b")
    assert sent_cookies == [None, None]
    with pytest.raises(TypeError):
        client.cookies = {"session": "abc"}


@pytest.mark.parametrize(("base_url", "url"), [
    ("http://api.test", "/api/a"),
    ("http://api.test/", "api/a"),
    ("http://api.test/store", "/api/a?b=1&c=%20d"),
    ("http://api.test/store/", "/api/a"),
    ("http://api.test", "https://pricing.test/store/pricing/prices/1"),
])
def test_relative_urls_join_base_url_as_httpx_joins_them(base_url: str, url: str) -> None:
    seen: list[httpx.URL] = []
    transport = httpx.MockTransport(lambda request: seen.append(request.url) or httpx.Response(204))
    HttpClient("API", base_url=base_url, transport=transport).request("GET", url)
    assert seen == [httpx.Client(base_url=base_url).build_request("GET", url).url]


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def _proxy_environment(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


def test_a_proxy_in_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def proxy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"asked_for": environ["REQUEST_URI"]}).encode()]

    running = serve(proxy)
    try:
        _proxy_environment(monkeypatch, {"HTTP_PROXY": running.url})
        client = HttpClient("API", base_url="http://api.test", max_retries=0)
        assert client.json("GET", "/items/1") == {"asked_for": "http://api.test/items/1"}  # the proxy's absolute form
    finally:
        running.stop()


@pytest.mark.parametrize(("environment", "expected"), [
    ({}, False),
    ({"HTTPS_PROXY": "http://proxy:3128"}, True),
    ({"ALL_PROXY": "proxy:3128"}, True),
    ({"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "*"}, False),
    ({"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "api.test"}, True),
])  # fmt: skip
def test_proxy_in_environment(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: bool) -> None:
    _proxy_environment(monkeypatch, environment)
    assert proxy_in_environment() is expected
