"""The simulated exchange's HTTP face: Deribit's v2 REST API (the JSON-RPC subset ccxt uses).

``GET /api/v2/public/<method>?…`` and ``GET /api/v2/private/<method>?…``; private calls must carry
a ``Authorization: deri-hmac-sha256 id=KEY,ts=TS,sig=SIG,nonce=NONCE`` header (its four parts in any
order: ccxt sends ``id,ts,sig,nonce``, Deribit's documented example ``id,ts,nonce,sig``), where
``SIG`` is HMAC-SHA256 with the secret over ``TS\\nNONCE\\nGET\\n<raw path and query>\\n<body>\\n``.
As Deribit documents, ``TS`` (ms) is valid for 60 seconds of the wall clock and a nonce is single
use: a request whose timestamp is older (or as far ahead), or that repeats a signed
``(ts, nonce)`` already seen, is refused with 13009.  Replies are
``{"jsonrpc": "2.0", "result": …, "usIn", "usOut", "usDiff", "testnet"}`` (times in virtual µs)
or ``{"jsonrpc": "2.0", "error": {"code", "message", "data"}, …}`` with Deribit's codes.

Admin surface for tests (loopback only, no auth):

* ``GET /_sim/requests`` – the JSON-RPC methods received, in order; ``POST /_sim/requests/clear``;
* ``POST /_sim/faults`` ``{"method": "private/buy" | "*", "kind": …, "count": 1}`` – the next
  ``count`` matching requests fail that way.  Before the request is executed: ``error`` (Deribit
  error ``code``), ``http`` (HTTP ``status``, plain-text body), ``rate_limit`` (10028, HTTP 429),
  ``reset`` (the connection closes, nothing executed).  ``delay`` waits ``seconds`` and then
  executes, as a slow exchange would.  After the request is executed (the order is placed): ``drop``
  (the connection closes without a reply), ``truncate`` (half of the JSON reply) and ``rewrite``
  (the reply with ``value`` — any JSON, ``"NaN"`` for NaN — set at the dotted ``path``, e.g.
  ``result.0.size``, ``*`` for every element of a list); ``POST /_sim/faults/clear``;
* ``POST /_sim/move`` ``{"price_factor": 0.9, "vol_shift": 0.1}`` (with ``"currency": "ETH"`` one
  currency's market, without it every currency's); ``POST /_sim/advance`` ``{"seconds": 3600}``
  (every engine: one clock); ``GET /_sim/state`` – clock, market, account and ledger (of a
  multi-currency exchange: per currency under ``currencies``, or one currency's with
  ``?currency=ETH``).

It serves a :class:`~controller.sim.engine.SimExchange` (one currency) or a
:class:`~controller.sim.multi.MultiSim` (several, each request routed to its currency's engine by
:mod:`.deribit_router`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from controller.sim.deribit_api import ms
from controller.sim.deribit_router import DeribitRouter
from controller.sim.engine import SimExchange
from controller.sim.model import SimError
from controller.sim.multi import MultiSim

DEFAULT_API_KEY = "levctl-sim-key"
DEFAULT_API_SECRET = "levctl-sim-secret"
_AUTH_SCHEME = "deri-hmac-sha256 "
_AUTH_PARTS = ("id", "ts", "sig", "nonce")
TIMESTAMP_VALID_MS = 60_000  # "It's valid for 60 seconds since generation"
_RATE_LIMIT = 10028


BEFORE = ("error", "http", "rate_limit", "reset", "delay")  # faults acted out before executing
AFTER = ("drop", "truncate", "rewrite")  # the request is executed, its reply is lost or mangled


@dataclass
class Fault:
    method: str  # "public/ticker", "private/buy" … or "*"
    kind: str  # one of BEFORE or AFTER
    count: int = 1
    code: int = 10001
    status: int = 503
    seconds: float = 0.0
    path: str = ""  # rewrite: dotted path into the reply, "*" for every list element
    value: Any = None  # rewrite: the value to put there ("NaN" means NaN)

    def matches(self, method: str) -> bool:
        return self.count > 0 and self.method in ("*", method)


@dataclass
class _State:
    exchange: MultiSim
    api: DeribitRouter
    api_key: str
    api_secret: str
    speed: float  # virtual seconds per wall second; 0 = the clock moves only through /_sim/advance
    lock: threading.RLock = field(default_factory=threading.RLock)
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    wall_start: float = field(default_factory=time.monotonic)
    nonces: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (ts, nonce, sig) → ts

    def __post_init__(self) -> None:
        self.virtual_start = self.exchange.now

    def sync_clock(self) -> None:
        if self.speed > 0:
            target = self.virtual_start + timedelta(seconds=self.speed * (time.monotonic() - self.wall_start))
            if target > self.exchange.now:
                self.exchange.advance_to(target)

    def take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method):
                    fault.count -= 1
                    return fault
        return None


class SimServer:
    """Run the HTTP face on 127.0.0.1 in a background thread (tests) or in the foreground (CLI)."""

    def __init__(
        self,
        exchange: SimExchange | MultiSim,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        speed: float = 0.0,
    ) -> None:
        if not api_key or not api_secret:
            raise ValueError("the simulator needs a non-empty API key and secret")
        if isinstance(exchange, SimExchange):
            exchange = MultiSim([exchange])
        self.exchange = exchange
        self.state = _State(exchange, DeribitRouter(exchange), api_key, api_secret, speed)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{cast(str, host)}:{port}"

    def start(self) -> SimServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="levctl-sim", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"
    server_version = "levctl-sim"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms ACK stalls

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log lives in /_sim/requests, not on stderr

    # ----------------------------------------------------------------- routing
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.startswith("/api/v2/"):
            self._rpc(parts.path[len("/api/v2/") :], dict(parse_qsl(parts.query, keep_blank_values=True)))
        elif parts.path == "/_sim/requests":
            with self.state.lock:
                self._send_json(200, {"requests": list(self.state.requests)})
        elif parts.path == "/_sim/state":
            currency = dict(parse_qsl(parts.query)).get("currency")
            try:
                self._send_json(200, self._admin_state(currency))
            except KeyError as exc:
                self._send_json(400, {"error": str(exc)})
        else:
            self._send_json(404, {"error": f"no route {parts.path}"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        try:
            payload = json.loads(body or "{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": "body must be JSON"})
            return
        with self.state.lock:
            try:
                answer = self._admin(path, payload)
            except (ValueError, TypeError, KeyError) as exc:
                self._send_json(400, {"error": str(exc)})
                return
        if answer is None:
            self._send_json(404, {"error": f"no route {path}"})
        else:
            self._send_json(200, answer)

    def _admin(self, path: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        exchange = self.state.exchange
        if path == "/_sim/requests/clear":
            self.state.requests.clear()
            return {"ok": True}
        if path == "/_sim/faults":
            fault = Fault(**payload)
            if fault.kind not in BEFORE + AFTER:
                raise ValueError(f"unknown fault kind {fault.kind!r} (one of {', '.join(BEFORE + AFTER)})")
            if fault.kind == "rewrite" and not fault.path:
                raise ValueError("a rewrite fault needs a path")
            self.state.faults.append(fault)
            return {"ok": True, "faults": len(self.state.faults)}
        if path == "/_sim/faults/clear":
            self.state.faults.clear()
            return {"ok": True}
        if path == "/_sim/move":
            currency = payload.get("currency")
            exchange.shock(
                currency=currency,
                price_factor=float(payload.get("price_factor", 1.0)),
                vol_shift=float(payload.get("vol_shift", 0.0)),
            )
            return self._admin_state(currency)
        if path == "/_sim/advance":
            exchange.advance(float(payload["seconds"]))
            return self._admin_state(None)
        return None

    def _admin_state(self, currency: str | None) -> dict[str, Any]:
        """One engine's state (the only one's, or ``currency``'s), or every engine's by currency."""
        with self.state.lock:
            exchange = self.state.exchange
            if currency is not None:
                return _engine_state(exchange.engine(currency))
            if len(exchange.engines) == 1:
                return _engine_state(exchange.first)
            return {
                "now": exchange.now.isoformat(),
                "now_ms": ms(exchange.now),
                "currencies": {c: _engine_state(e) for c, e in exchange.engines.items()},
            }

    # ----------------------------------------------------------------- JSON-RPC
    def _rpc(self, method: str, params: dict[str, str]) -> None:
        self._read_body()
        received = time.time()
        with self.state.lock:
            self.state.requests.append({"method": method, "params": params, "wall_time": received})
        fault = self.state.take_fault(method)
        if fault is not None and fault.kind in BEFORE and self._apply_fault(fault):
            return
        if method.startswith("private/"):
            problem = self._authentication_problem()
            if problem is not None:
                self._send_error(13009, "unauthorized", problem, http_status=400)
                return
        with self.state.lock:
            us_in = self._virtual_us()
            try:
                self.state.sync_clock()
                result = self.state.api.call(method, params)
            except SimError as exc:
                self._send_sim_error(exc)
                return
            us_out = self._virtual_us()
            body = {
                "jsonrpc": "2.0",
                "result": result,
                "usIn": us_in,
                "usOut": us_out,
                "usDiff": us_out - us_in,
                "testnet": self.state.exchange.first.config.testnet,
            }
        if fault is not None and fault.kind in AFTER:
            self._send_mangled(fault, body)
        else:
            self._send_json(200, body)

    def _send_mangled(self, fault: Fault, body: dict[str, Any]) -> None:
        """The request was executed; its reply is lost (drop) or arrives mangled."""
        if fault.kind == "drop":
            self._reset_connection()
            return
        if fault.kind == "rewrite":
            value = float("nan") if fault.value == "NaN" else fault.value
            _set_path(body, fault.path.split("."), value)
            self._send_json(200, body)
            return
        data = json.dumps(body).encode()
        self._send_bytes(200, data[: len(data) // 2], "application/json")

    def _reset_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _apply_fault(self, fault: Fault) -> bool:
        """Act out a fault; True when the request ends here."""
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return False  # then executed, as a slow exchange would
        if fault.kind == "reset":
            self._reset_connection()
            return True
        if fault.kind == "http":
            self._send_text(fault.status, "Service Unavailable" if fault.status == 503 else "Server Error")
        elif fault.kind == "rate_limit":
            self._send_error(_RATE_LIMIT, "too_many_requests", "injected rate limit", http_status=429)
        else:
            self._send_error(fault.code, "injected_error", f"fault injected by the test ({fault.code})")
        return True

    def _authentication_problem(self) -> str | None:
        parts = _auth_parts(self.headers.get("Authorization", ""))
        if parts is None:
            return "missing or malformed deri-hmac-sha256 Authorization header"
        if not hmac.compare_digest(parts["id"], self.state.api_key):
            return "unknown API key"
        payload = f"{parts['ts']}\n{parts['nonce']}\nGET\n{self.path}\n\n"
        expected = hmac.new(self.state.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["sig"]):
            return "bad signature"
        now_ms = int(time.time() * 1000)
        if abs(now_ms - int(parts["ts"])) > TIMESTAMP_VALID_MS:
            return f"timestamp {parts['ts']} is not within 60 s of the exchange's clock"
        key = (parts["ts"], parts["nonce"], parts["sig"])
        with self.state.lock:
            for seen, stamp in list(self.state.nonces.items()):
                if now_ms - stamp > TIMESTAMP_VALID_MS:
                    del self.state.nonces[seen]
            if key in self.state.nonces:
                return f"nonce {parts['nonce']} was already used"
            self.state.nonces[key] = int(parts["ts"])
        return None

    def _virtual_us(self) -> int:
        return ms(self.state.exchange.now) * 1000

    # ----------------------------------------------------------------- output
    def _send_error(
        self, code: int, message: str, reason: str | None, *, http_status: int = 400, param: str | None = None
    ) -> None:
        us = self._virtual_us()
        error: dict[str, Any] = {"code": code, "message": message}
        data = {k: v for k, v in (("reason", reason), ("param", param)) if v}
        if data:
            error["data"] = data
        self._send_json(
            http_status,
            {
                "jsonrpc": "2.0",
                "error": error,
                "usIn": us,
                "usOut": us,
                "usDiff": 0,
                "testnet": self.state.exchange.first.config.testnet,
            },
        )

    def _send_sim_error(self, exc: SimError) -> None:
        self._send_error(exc.code, exc.message, exc.reason, http_status=exc.http_status, param=exc.param)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json")

    def _send_text(self, status: int, text: str) -> None:
        self._send_bytes(status, text.encode(), "text/plain")

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer

    def _read_body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""


def _engine_state(engine: SimExchange) -> dict[str, Any]:
    market = engine.market()
    account = engine.account()
    return {
        "now": engine.now.isoformat(),
        "now_ms": ms(engine.now),
        "index": market.index,
        "atm_vol": market.atm_vol,
        "perp_premium": market.perp_premium,
        "funding_rate_8h": engine.funding_rate(),
        "equity": account.equity,
        "balance": account.balance,
        "initial_margin": account.initial_margin,
        "maintenance_margin": account.maintenance_margin,
        "positions": {v.listed.name: v.book.size for v in engine.position_views()},
        "ledger": engine.ledger(),
        "orders": len(engine.orders),
        "order_labels": [o.label for o in engine.orders.values()],
        "events": [{"time": e.time.isoformat(), "kind": e.kind, "message": e.message} for e in engine.events],
        "currency": engine.config.currency,
    }


def _auth_parts(header: str) -> dict[str, str] | None:
    """The ``id``, ``ts``, ``sig`` and ``nonce`` of a ``deri-hmac-sha256`` header, in any order."""
    if not header.startswith(_AUTH_SCHEME):
        return None
    parts = dict(item.partition("=")[::2] for item in header[len(_AUTH_SCHEME) :].split(","))
    if sorted(parts) != sorted(_AUTH_PARTS) or not parts["ts"].isdigit() or not parts["sig"]:
        return None
    return parts


def _set_path(node: Any, parts: list[str], value: Any) -> None:
    """Set ``value`` at a dotted path of a JSON reply; ``*`` stands for every element of a list."""
    head, rest = parts[0], parts[1:]
    if head == "*":
        targets = list(range(len(node))) if isinstance(node, list) else list(node)
    else:
        targets = [int(head) if isinstance(node, list) else head]
    for key in targets:
        if rest:
            _set_path(node[key], rest, value)
        else:
            node[key] = value
