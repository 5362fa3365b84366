"""The ccxt-backed venue (Deribit first): the one place ccxt lives.

* Testnet through ccxt's sandbox mode; ``rest_url`` overrides the REST base (that is how the
  controller reaches ``levctl sim serve`` on 127.0.0.1).
* A snapshot costs 5 REST calls (6 with the volatility index), plus one ticker per option
  position absent from the book summary: account summary, positions, the book summary of the
  whole currency (every instrument's mark, and the options' forward and mark IV), the hedge
  perpetual's ticker, its funding rate over the last 8 hours.  Deribit's positions carry no
  forward or mark IV (:mod:`.option_marks`), so an option the book summary lacks is read from its
  ticker; every option the exchange lists is in the book summary, so in practice it stays at 5.
  ccxt's rate limiter stays on.
* The exchange's clock: every Deribit reply carries ``usOut`` (its time when it answered, µs).
  ccxt keeps the last reply (``enableLastJsonResponse``), so each call reads it; between calls the
  exchange's time is that reading plus the monotonic time elapsed since (:meth:`server_time`).
* Orders go out with Deribit's ``valid_until`` (exchange time, ms) when the request has one.
* ccxt's exceptions are translated here into :class:`TemporaryVenueError` (network trouble, rate
  limits, maintenance: retry with backoff) or :class:`FatalVenueError` (credentials, permissions,
  rejected orders, bad requests), and any reply we cannot read — whatever Python raises while
  ccxt or we parse it — into :class:`MalformedReplyError`, each with a message a person
  understands and no secret in it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import ccxt

from controller.venues.base import (
    AccountSnapshot,
    InstrumentSpec,
    OrderReport,
    OrderRequest,
    OrderType,
    TradeReport,
    check_order,
    latest_order,
)
from controller.venues.deribit_json import (
    build_snapshot,
    from_us,
    number,
    options_without_marks,
    parse_instrument,
)
from controller.venues.deribit_orders import parse_order, parse_trade, trades_fee
from controller.venues.errors import (
    READ_ERRORS,
    AccessDeniedError,
    FatalVenueError,
    MalformedReplyError,
    OrderNotFoundError,
    OrderRejectedError,
    TemporaryVenueError,
    VenueError,
)
from controller.venues.settings import CcxtVenueSettings

T = TypeVar("T")
FUNDING_WINDOW_MS = 8 * 3600 * 1000  # get_funding_rate_value: the funding accrued over this window
VOL_INDEX_WINDOW_MS = 3600 * 1000  # get_volatility_index_data: the last hour, in minutes
# Deribit codes that ccxt reports as a plain ExchangeError but that say "try again": the request
# was not (or may not have been) processed.  11094 internal_server_error, 13028
# temporarily_unavailable, 13888 timed_out (also what a request arriving after valid_until gets).
TEMPORARY_CODES = {11094, 13028, 13888}


class CcxtVenue:
    """A :class:`~controller.venues.base.Venue` over a ccxt exchange object."""

    def __init__(
        self,
        settings: CcxtVenueSettings,
        *,
        api_key: str | None,
        api_secret: str | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        exchange_factory: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        if settings.exchange != "deribit":
            raise FatalVenueError(f"exchange {settings.exchange!r} is not supported yet (only deribit)")
        self.settings = settings
        self.name = f"{settings.exchange}{'-testnet' if settings.sandbox else ''}"
        self._clock = clock
        self._monotonic = monotonic
        self._secrets = tuple(s for s in (api_key, api_secret) if s)
        factory = exchange_factory or ccxt.deribit
        self._exchange = factory(
            {
                "apiKey": api_key or "",
                "secret": api_secret or "",
                "timeout": settings.timeout_ms,
                "enableRateLimit": True,
                "enableLastJsonResponse": True,  # Deribit's usOut: the exchange's clock
            }
        )
        self._configure_urls()
        self._specs: dict[str, InstrumentSpec] = {}
        self._calls = 0
        self._server_time: datetime | None = None
        self._server_time_read_at = 0.0  # monotonic seconds when _server_time was read

    def _configure_urls(self) -> None:
        ex, s = self._exchange, self.settings
        if s.sandbox:
            if s.rest_url:
                ex.urls["test"] = {**ex.urls.get("test", {}), "rest": s.rest_url}
            ex.set_sandbox_mode(True)
        elif s.rest_url:
            ex.urls["api"] = {**ex.urls["api"], "rest": s.rest_url}

    # ----------------------------------------------------------------- protocol
    def load_instruments(self) -> Mapping[str, InstrumentSpec]:
        specs = self._call(
            "load instruments", lambda: self._exchange.load_markets(reload=True), self._parse_markets
        )
        if self.settings.hedge_instrument not in specs:
            raise FatalVenueError(
                f"the exchange does not list the hedge instrument {self.settings.hedge_instrument}"
            )
        self._specs = specs
        return specs

    def _parse_markets(self, markets: Mapping[str, Any]) -> dict[str, InstrumentSpec]:
        specs = {}
        for market in markets.values():
            if market.get("base") != self.settings.currency:
                continue
            spec = parse_instrument(market["info"])
            if spec is not None:
                specs[spec.name] = spec
        return specs

    def snapshot(self) -> AccountSnapshot:
        self._ensure_markets()
        cur, hedge = self.settings.currency, self._symbol(self.settings.hedge_instrument)
        start_calls = self._calls
        times: dict[str, datetime] = {}
        summary = self._timed(
            times, "summary", "read the account", lambda: self._exchange.fetch_balance({"code": cur})
        )
        positions = self._timed(
            times,
            "positions",
            "read positions",
            lambda: self._exchange.fetch_positions(params={"currency": cur}),
        )
        tickers = self._timed(
            times, "book", "read the book summary", lambda: self._exchange.fetch_tickers(params={"code": cur})
        )
        ticker = self._timed(
            times, "ticker", "read the hedge ticker", lambda: self._exchange.fetch_ticker(hedge)
        )
        window = self._window_ms(FUNDING_WINDOW_MS)
        funding = self._timed(
            times,
            "funding",
            "read the funding rate",
            lambda: self._exchange.fetch_funding_rate(hedge, params=window),
        )
        vol_index = None
        if self.settings.use_vol_index:
            reply = self._timed(
                times,
                "vol_index",
                "read the volatility index",
                lambda: self._exchange.publicGetGetVolatilityIndexData(
                    {"currency": cur, **self._window_ms(VOL_INDEX_WINDOW_MS), "resolution": "60"}
                ),
            )
            vol_index = reply.get("result")
        raw_positions = [p["info"] for p in positions]
        book = [t["info"] for t in tickers.values()]
        missing = self._parsed("read positions", lambda: options_without_marks(raw_positions, book))
        option_tickers = {name: self._option_ticker(name) for name in missing}
        taken_at = self._clock()
        return self._parsed(
            "read the account snapshot",
            lambda: build_snapshot(
                venue=self.name,
                currency=cur,
                summary=summary["info"],
                positions=raw_positions,
                book=book,
                hedge_ticker=ticker["info"],
                funding_rate_8h=None
                if funding.get("fundingRate") is None
                else number(funding["fundingRate"], "funding rate"),
                vol_index=vol_index,
                option_tickers=option_tickers,
                server_times=times,
                taken_at=taken_at,
                rest_calls=self._calls - start_calls,
            ),
        )

    def _option_ticker(self, name: str) -> Any:
        """An option's raw ticker (by name: an option that just expired is no longer a ccxt market)."""
        return self._call(
            f"read the ticker of {name}",
            lambda: self._exchange.publicGetTicker({"instrument_name": name}),
            lambda reply: reply["result"],
        )

    def _window_ms(self, length_ms: int) -> dict[str, int]:
        """``start_timestamp``/``end_timestamp`` of the last ``length_ms``, in the exchange's clock."""
        now_ms = int(self.server_time().timestamp() * 1000)
        return {"start_timestamp": now_ms - length_ms, "end_timestamp": now_ms}

    def place_order(self, request: OrderRequest) -> OrderReport:
        self._ensure_markets()
        spec = self._specs.get(request.instrument)
        if spec is None:
            raise OrderRejectedError(f"{self.name}: the exchange does not list {request.instrument}")
        check_order(request, spec)
        params: dict[str, Any] = {"label": request.label}
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.post_only:
            params["postOnly"] = True
        if request.valid_until is not None:
            params["valid_until"] = int(request.valid_until.timestamp() * 1000)
        symbol = self._symbol(request.instrument)
        return self._call(
            f"place {request.side} {request.amount:g} {request.instrument} ({request.label})",
            lambda: self._exchange.create_order(
                symbol,
                request.type.value,
                request.side.value,
                request.amount,
                request.price if request.type is OrderType.LIMIT else None,
                params,
            ),
            lambda order: parse_order(order["info"]),
        )

    def get_order(self, *, order_id: str | None = None, label: str | None = None) -> OrderReport | None:
        if (order_id is None) == (label is None):
            raise ValueError("look an order up by exactly one of order_id or label")
        self._ensure_markets()
        if order_id is not None:
            try:
                report = self._call(
                    f"look up order {order_id}",
                    lambda: self._exchange.fetch_order(order_id),
                    lambda order: parse_order(order["info"]),
                )
            except OrderNotFoundError:
                return None
            return self._with_fee(report)
        found = self._call(
            f"look up order labelled {label}",
            lambda: self._exchange.privateGetGetOrderStateByLabel(
                {"currency": self.settings.currency, "label": label}
            ),
            lambda found: latest_order([parse_order(o) for o in found["result"]]),
        )
        return None if found is None else self._with_fee(found)

    def _with_fee(self, report: OrderReport) -> OrderReport:
        """The report with its fee, read from the order's trades when its reply had none."""
        if report.fee_coin is not None:
            return report
        fee = self._call(
            f"read the trades of order {report.order_id}",
            lambda: self._exchange.privateGetGetUserTradesByOrder({"order_id": report.order_id}),
            lambda reply: trades_fee(reply["result"], f"order {report.order_id}"),
        )
        return replace(report, fee_coin=fee)

    def trades_by_label(self, label: str, instrument: str) -> list[TradeReport]:
        self._ensure_markets()
        return self._call(
            f"read the trades of {instrument} labelled {label}",
            lambda: self._exchange.privateGetGetUserTradesByInstrument(
                {"instrument_name": instrument, "count": 100, "sorting": "desc"}
            ),
            lambda reply: [
                t for t in (parse_trade(x) for x in reply["result"]["trades"]) if t.label == label
            ],
        )

    def server_time(self) -> datetime:
        if self._server_time is None:
            self._call("read the exchange's time", lambda: self._exchange.publicGetGetTime())
        assert self._server_time is not None
        elapsed = self._monotonic() - self._server_time_read_at
        return self._server_time + timedelta(seconds=max(elapsed, 0.0))

    def cancel_order(self, order_id: str) -> OrderReport:
        self._ensure_markets()
        return self._with_fee(
            self._call(
                f"cancel order {order_id}",
                lambda: self._exchange.cancel_order(order_id),
                lambda order: parse_order(order["info"]),
            )
        )

    def open_orders(self) -> list[OrderReport]:
        self._ensure_markets()
        return self._call(
            "list open orders",
            lambda: self._exchange.fetch_open_orders(params={"code": self.settings.currency}),
            lambda orders: [parse_order(o["info"]) for o in orders],
        )

    def access_profile(self) -> dict[str, Any]:
        """What ``levctl doctor`` asks: a signed private read (are the credentials accepted?), the
        account's currency, margin model and equity, and the key's scope from Deribit's ``public/auth``."""
        cur = self.settings.currency
        summary = self._call(
            "read the account summary", lambda: self._exchange.privateGetGetAccountSummary({"currency": cur})
        )
        ex = self._exchange
        auth = self._call(
            "read the API key's scope",
            lambda: ex.publicGetAuth(
                {"grant_type": "client_credentials", "client_id": ex.apiKey, "client_secret": ex.secret}
            ),
        )
        account = summary.get("result") or {}
        return {
            "currency": account.get("currency"),
            "margin_model": account.get("margin_model"),
            "equity": account.get("equity"),
            "scope": (auth.get("result") or {}).get("scope"),
        }

    # ----------------------------------------------------------------- plumbing
    def _ensure_markets(self) -> None:
        if not self._specs:
            self.load_instruments()

    def _symbol(self, instrument: str) -> str:
        try:
            return self._exchange.markets_by_id[instrument][0]["symbol"]
        except (KeyError, IndexError, TypeError):
            raise FatalVenueError(f"the exchange does not list {instrument}") from None

    def _timed(self, times: dict[str, datetime], key: str, what: str, operation: Callable[[], T]) -> T:
        result = self._call(what, operation)
        times[key] = self._server_time or self._clock()  # the exchange's clock when it answered
        return result

    def _call(
        self, what: str, operation: Callable[[], Any], parse: Callable[[Any], Any] | None = None
    ) -> Any:
        """One request: ccxt's errors translated, the exchange's clock read, the reply parsed."""
        self._calls += 1
        self._exchange.last_json_response = None
        try:
            result: Any = operation()
        except ccxt.BaseError as exc:
            raise self._translate(what, exc) from None
        except READ_ERRORS as exc:  # ccxt choked on the reply itself (truncated, NaN, null …)
            raise self._unreadable(what, exc) from None
        self._read_server_time()
        return self._parsed(what, lambda: result if parse is None else parse(result))

    def _parsed(self, what: str, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except VenueError:
            raise
        except READ_ERRORS as exc:
            raise self._unreadable(what, exc) from None

    def _unreadable(self, what: str, exc: BaseException) -> MalformedReplyError:
        detail = self._scrub(f"{type(exc).__name__}: {exc}")[:200]
        return MalformedReplyError(
            f"{self.name}: could not {what}: the exchange's reply could not be read [{detail}]"
        )

    def _read_server_time(self) -> None:
        reply = self._exchange.last_json_response
        if isinstance(reply, dict) and "usOut" in reply:
            try:
                self._server_time = from_us(reply["usOut"], "usOut")
            except MalformedReplyError:
                return  # a bad clock field: keep the last good reading
            self._server_time_read_at = self._monotonic()

    def _translate(self, what: str, exc: Exception) -> VenueError:
        code, detail = _exchange_detail(exc)
        detail = self._scrub(detail)
        prefix = f"{self.name}: could not {what}"
        if code in TEMPORARY_CODES:
            return TemporaryVenueError(f"{prefix}: the exchange could not process it now{detail}")
        table: list[tuple[type, type[VenueError], str]] = [
            # most specific first: PermissionDenied and AccountSuspended subclass AuthenticationError
            (ccxt.PermissionDenied, AccessDeniedError, "the API key lacks permission for this"),
            (ccxt.AccountSuspended, AccessDeniedError, "the account is suspended"),
            (
                ccxt.AuthenticationError,
                AccessDeniedError,
                "the exchange rejected the API credentials (check LEVCTL_API_KEY and LEVCTL_API_SECRET)",
            ),
            (ccxt.InsufficientFunds, OrderRejectedError, "not enough funds (margin) for this order"),
            (ccxt.OrderNotFound, OrderNotFoundError, "no such order"),  # before InvalidOrder, its parent
            (ccxt.InvalidOrder, OrderRejectedError, "the exchange rejected the order"),
            (ccxt.RateLimitExceeded, TemporaryVenueError, "rate limited by the exchange"),  # then its parents
            (ccxt.DDoSProtection, TemporaryVenueError, "rate limited by the exchange"),
            (ccxt.RequestTimeout, TemporaryVenueError, "the request timed out"),
            (ccxt.OnMaintenance, TemporaryVenueError, "the exchange is under maintenance"),
            (ccxt.ExchangeNotAvailable, TemporaryVenueError, "the exchange is not available"),
            (ccxt.NetworkError, TemporaryVenueError, "network error"),
            (ccxt.BadResponse, MalformedReplyError, "the exchange's reply could not be read"),
            (ccxt.NullResponse, MalformedReplyError, "the exchange's reply was empty"),
            (ccxt.BadSymbol, FatalVenueError, "unknown instrument"),  # before BadRequest, its parent
            (ccxt.BadRequest, FatalVenueError, "the exchange refused the request as malformed"),
            (ccxt.NotSupported, FatalVenueError, "not supported by the exchange"),
        ]
        for ccxt_type, ours, explanation in table:
            if isinstance(exc, ccxt_type):
                return ours(f"{prefix}: {explanation}{detail}")
        return FatalVenueError(f"{prefix}: exchange error{detail}")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _exchange_detail(exc: Exception) -> tuple[int | None, str]:
    """The exchange's own code, and its code and reason as text, when its JSON error is in the message."""
    text = str(exc)
    start = text.find("{")
    if start >= 0:
        try:
            body = json.loads(text[start:])
            error = body.get("error", {})
            reason = (error.get("data") or {}).get("reason")
            code = error.get("code")
            return (
                int(code) if isinstance(code, int) else None,
                f" [{error.get('message')} {code}{': ' + reason if reason else ''}]",
            )
        except (ValueError, AttributeError, TypeError):
            pass
    return None, (f" [{type(exc).__name__}]" if not text else f" [{type(exc).__name__}: {text[:200]}]")
