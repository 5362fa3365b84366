"""``levctl serve``: a read-only web page that follows a decision log while the bot writes it.

Starlette serves it and uvicorn runs it.  The page is rendered on the server (:mod:`.live_html`); each
time the log gains a cycle or an event, the open page receives the new fragment by server-sent
events (a few lines of script swap it in), so "cycle 123" advances without a reload.  The process
reads the SQLite file through ``mode=ro`` (:mod:`.logdb`), holds no exchange credential and has no
code that could reach an exchange.

Bound to 127.0.0.1 by default.  With ``LEVCTL_SERVE_TOKEN`` set — required for any other address —
every request needs the token: ``Authorization: Bearer <token>``, or a sign-in (the form at
``/login``, or ``/login?token=…`` once) that sets a session cookie holding a random session id,
never the token.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from controller.review.live_data import live_state
from controller.review.live_html import fragment, json_ready, login_page, page

TOKEN_ENV = "LEVCTL_SERVE_TOKEN"
COOKIE = "levctl_session"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ServeError(Exception):
    """The page cannot be served as asked (another address without a token …)."""


def check_bind(host: str, token: str | None) -> None:
    """Any address but the loopback needs a token: the page shows an account's positions."""
    if token:
        return
    try:
        loopback = host in LOOPBACK or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ServeError(
            f"serving on {host} needs a token: set {TOKEN_ENV} (then sign in at /login, or send "
            "'Authorization: Bearer <token>'), or bind 127.0.0.1"
        )


def check_listen(host: str, port: int) -> None:
    """The address can be listened on (a port in use is one line, not uvicorn's own messages)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ServeError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (another levctl serve? choose --port)"
        ) from None


def live_app(db: Path, *, token: str | None = None, poll_s: float = 1.0) -> Starlette:
    sessions: set[str] = set()
    plots: dict[tuple[int, int], bytes] = {}

    def authorised(request: Request) -> bool:
        if not token:
            return True
        bearer = request.headers.get("authorization", "")
        if bearer.startswith("Bearer ") and hmac.compare_digest(bearer[7:].encode(), token.encode()):
            return True
        return request.cookies.get(COOKIE, "") in sessions

    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path == "/login" or authorised(request):
            return await call_next(request)
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(login_page(), status_code=401)
        return JSONResponse({"error": f"a token is needed ({TOKEN_ENV})"}, status_code=401)

    async def login(request: Request) -> Response:
        if request.method == "POST":
            given = parse_qs((await request.body()).decode(errors="replace")).get("token", [""])[0]
        else:
            given = request.query_params.get("token", "")
        if not token:
            return RedirectResponse("./", status_code=303)
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return HTMLResponse(login_page("wrong token" if given else ""), status_code=401 if given else 200)
        session = secrets.token_urlsafe(24)
        sessions.add(session)
        response = RedirectResponse("./", status_code=303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict")
        return response

    async def index(request: Request) -> Response:
        state = await asyncio.to_thread(live_state, db)
        return HTMLResponse(page(db.name, fragment(state), db=str(db)))

    async def frag(request: Request) -> Response:
        return HTMLResponse(fragment(await asyncio.to_thread(live_state, db)))

    async def state_json(request: Request) -> Response:
        state = await asyncio.to_thread(live_state, db)
        return Response(json_ready(state), media_type="application/json")

    async def events(request: Request) -> Response:
        from sse_starlette.sse import EventSourceResponse

        async def updates() -> AsyncIterator[dict[str, Any]]:
            seen = None
            while not await request.is_disconnected():
                state = await asyncio.to_thread(live_state, db)
                mark = _mark(state)
                if mark != seen:
                    seen = mark
                    yield {"event": "update", "data": fragment(state)}
                await asyncio.sleep(poll_s)

        return EventSourceResponse(updates(), ping=15)

    async def plot(request: Request) -> Response:
        state = await asyncio.to_thread(live_state, db)
        if "waiting" in state or not state["recent"]:
            return Response(status_code=404)
        key = (state["run"]["id"], state["recent"][-1]["id"])
        if key not in plots:
            plots.clear()
            plots[key] = await asyncio.to_thread(_plot, state)
        return Response(plots[key], media_type="image/png", headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", index),
        Route("/fragment", frag),
        Route("/events", events),
        Route("/plot.png", plot),
        Route("/api/state", state_json),
        Route("/login", login, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])


def _plot(state: dict[str, Any]) -> bytes:
    """The recent cycles drawn: a run of several currencies as its book and each currency."""
    limits = state["limits"]
    if state.get("legs"):
        from controller.review.live_book_plot import book_plot

        limit = limits.get("book_max_var_fraction")
        return book_plot(state["recent"], state["currencies"], state["run"], limit=limit)
    from controller.review.live_plot import recent_plot

    return recent_plot(state["recent"], state["run"], limit=limits.get("max_var_fraction"))


def _mark(state: dict[str, Any]) -> tuple[Any, ...]:
    """What changes when the log gains something the page shows."""
    if "waiting" in state:
        return ("waiting", state["waiting"])
    cycle = state["cycle"] or {}
    events = state["events"][0]["ts"] if state["events"] else None
    return (state["run"]["id"], state["run"]["status"], cycle.get("id"), events, len(state["orders"]))


def serve_live(db: Path, *, host: str, port: int, token: str | None, poll_s: float = 1.0) -> None:
    """Serve until Ctrl-C (uvicorn's own signal handling ends the event streams and exits)."""
    import uvicorn

    check_bind(host, token)
    check_listen(host, port)
    app = live_app(db, token=token, poll_s=poll_s)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
