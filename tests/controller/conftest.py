"""Fixtures: a fresh simulated exchange, its HTTP face on 127.0.0.1, and the real ccxt client."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from controller.sim import SimConfig, SimExchange
from controller.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimServer


class Admin:
    """The test's handle on the simulator's admin surface."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as reply:
            return json.load(reply)

    def post(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload or {}).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.load(reply)

    def methods(self) -> list[str]:
        return [r["method"] for r in self.get("/_sim/requests")["requests"]]

    def clear_requests(self) -> None:
        self.post("/_sim/requests/clear")

    def fault(self, **spec: Any) -> None:
        self.post("/_sim/faults", spec)


@pytest.fixture
def engine() -> SimExchange:
    return SimExchange(SimConfig(seed=11, initial_balance=50.0))


@pytest.fixture
def server(engine: SimExchange) -> Iterator[SimServer]:
    with SimServer(engine, port=0, speed=0.0) as running:
        yield running


@pytest.fixture
def admin(server: SimServer) -> Admin:
    return Admin(server.url)


def make_client(url: str, *, secret: str = DEFAULT_API_SECRET, timeout_ms: int = 5000) -> Any:
    client = ccxt.deribit(
        {"apiKey": DEFAULT_API_KEY, "secret": secret, "timeout": timeout_ms, "enableRateLimit": True}
    )
    client.urls["test"] = {"rest": url}
    client.set_sandbox_mode(True)
    return client


@pytest.fixture
def client(server: SimServer) -> Any:
    return make_client(server.url)
