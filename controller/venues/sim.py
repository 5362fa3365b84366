"""The in-process venue: the simulated exchange without HTTP, for the embedded default and replays.

It answers through the same Deribit JSON-RPC layer as the HTTP face and parses the replies with
the same code as the ccxt venue, so the two venues give the same snapshot of the same engine.
Its orders execute on the simulator (a paper account).  ``rest_calls`` counts the JSON-RPC calls
a snapshot makes, as the HTTP face would receive them: 5 (6 with the volatility index, 4 without
the chain), plus one ticker per option position the book summary does not cover (every option
position when the chain is not read: Deribit's positions carry no forward or mark IV).

A two-currency book (BTC and ETH, each its own wallet as on Deribit) runs on one
:class:`~controller.sim.multi.MultiSim`: :func:`open_sim_venues` opens it and gives one venue per
currency (:meth:`SimVenue.on`), each reading and trading only its currency, all on one clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.sim import SimConfig, SimError, SimExchange
from controller.sim.deribit_api import DeribitApi, instrument_json
from controller.sim.listing import ListingParams
from controller.sim.market import ReplayError, ReplayPath, load_replay_csv
from controller.sim.multi import DEFAULT_RHO, MultiSim, currency_config
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
from controller.venues.deribit_json import build_snapshot, options_without_marks, parse_instrument
from controller.venues.deribit_orders import parse_order, parse_trade, trades_fee
from controller.venues.errors import (
    AccessDeniedError,
    FatalVenueError,
    OrderNotFoundError,
    OrderRejectedError,
    TemporaryVenueError,
    VenueError,
    reading_reply,
)
from controller.venues.settings import SimSettings, StartingPosition

_TEMPORARY = {10028, 10040, 10041, 10047, 11051, 11094, 13028, 13888}
_NOT_FOUND = {10004, 10010, 10029}
_AUTH = {13004, 13009, 10000}


def engine_config(settings: SimSettings) -> SimConfig:
    """The engine's configuration for these settings (the replay, if any, is opened separately)."""
    listing = ListingParams.for_currency(
        settings.currency,
        weeklies=settings.weeklies,
        monthlies=settings.monthlies,
        quarterlies=settings.quarterlies,
        strikes_each_side=settings.strikes_each_side,
    )
    return SimConfig(
        seed=settings.seed,
        start=settings.start,
        initial_balance=settings.initial_balance,
        listing=listing,
        margin_model=settings.margin_model,
    )


class SimSetupError(ValueError):
    """The simulator cannot be opened as configured; ``where`` names the setting (``replay``, ``book.2``)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def open_sim_venue(
    settings: SimSettings,
    *,
    book: Sequence[StartingPosition] = (),
    log: Callable[[str, str], None] = lambda level, message: None,
) -> SimVenue:
    """A fresh simulated exchange (stochastic market or a replayed history) holding ``book``."""
    if settings.replay:
        try:
            path = ReplayPath(load_replay_csv(Path(settings.replay)))
        except ReplayError as exc:
            raise SimSetupError("replay", str(exc)) from None
        engine = SimExchange(engine_config(settings), path=path)
    else:
        engine = SimExchange(engine_config(settings))
    _open_book(engine, book, settings.hedge_instrument, log)
    return SimVenue(engine, hedge_instrument=settings.hedge_instrument, use_vol_index=settings.use_vol_index)


def open_sim_venues(
    settings: Sequence[SimSettings],
    *,
    books: Mapping[str, Sequence[StartingPosition]] | None = None,
    rho: float = DEFAULT_RHO,
    log: Callable[[str, str], None] = lambda level, message: None,
) -> dict[str, SimVenue]:
    """One venue per currency (``settings``, one each) on a fresh two-currency exchange: correlated
    stochastic markets seeded with the first settings' seed, or each currency's replayed history
    (every one replayed, or none), each account opened with its currency's ``books`` entry."""
    replayed = [s.replay for s in settings if s.replay]
    if replayed and len(replayed) != len(settings):
        raise SimSetupError("replay", "replay every currency's history or none")
    configs = [currency_config(s.currency, base=engine_config(s)) for s in settings]
    try:
        if replayed:
            paths = [ReplayPath(load_replay_csv(Path(r))) for r in replayed]
            configs = [replace(c, start=p.start) for c, p in zip(configs, paths, strict=True)]
            exchange = MultiSim([SimExchange(c, path=p) for c, p in zip(configs, paths, strict=True)])
        else:
            exchange = MultiSim.correlated(configs, rho=rho)
    except ReplayError as exc:
        raise SimSetupError("replay", str(exc)) from None
    except ValueError as exc:  # currencies twice, histories that do not start together
        raise SimSetupError("currency", str(exc)) from None
    venues = {}
    for s in settings:
        book = (books or {}).get(s.currency, ())
        _open_book(exchange.engine(s.currency), book, s.hedge_instrument, log, f"book.{s.currency}")
        venues[s.currency] = SimVenue.on(
            exchange, s.currency, hedge_instrument=s.hedge_instrument, use_vol_index=s.use_vol_index
        )
    return venues


def _open_book(
    engine: SimExchange,
    book: Sequence[StartingPosition],
    hedge: str,
    log: Callable[[str, str], None],
    where: str = "book",
) -> None:
    for i, entry in enumerate(book):
        name = _starting_instrument(engine, entry, hedge)
        direction = "buy" if entry.size > 0 else "sell"
        try:
            engine.place_order(name=name, direction=direction, amount=abs(entry.size), label=f"start-{i}")
        except SimError as exc:
            raise SimSetupError(f"{where}.{i}", f"the simulator refused {name}: {exc}") from None
        log("info", f"starting book: {direction} {abs(entry.size):g} {name}")


def _starting_instrument(engine: SimExchange, entry: StartingPosition, hedge: str) -> str:
    if entry.kind == "perpetual":
        return hedge
    assert entry.expiry_days is not None and entry.moneyness is not None
    index = engine.market().index
    days, moneyness = entry.expiry_days, entry.moneyness
    options = [
        (x.name, x.expiry, x.strike)
        for x in engine.instruments(kind="option")
        if x.is_call == (entry.right == "call") and x.expiry is not None and x.strike is not None
    ]
    expiry = min(
        {e for _, e, _ in options}, key=lambda e: abs((e - engine.now).total_seconds() / 86400 - days)
    )
    same = [(name, strike) for name, e, strike in options if e == expiry]
    return min(same, key=lambda item: abs(item[1] - moneyness * index))[0]


class SimVenue:
    name = "sim"

    def __init__(
        self,
        engine: SimExchange,
        *,
        hedge_instrument: str | None = None,
        clock: Callable[[], datetime] | None = None,
        use_vol_index: bool = False,
        read_chain: bool = True,
    ) -> None:
        """``read_chain=False`` skips the whole chain's book summary in a snapshot: for a controller
        whose σ̂ does not come from the chain (the positions' replies carry their own marks)."""
        self.engine = engine
        self.api = DeribitApi(engine)
        self.currency = engine.config.currency
        self.hedge_instrument = hedge_instrument or f"{self.currency}-PERPETUAL"
        self.use_vol_index = use_vol_index
        self.read_chain = read_chain
        self._clock = clock or (lambda: engine.now)  # on the virtual clock, the engine's time is "now"
        self._moves_clock: SimExchange | MultiSim = engine  # what advance() moves

    @classmethod
    def on(
        cls,
        exchange: MultiSim,
        currency: str,
        *,
        hedge_instrument: str | None = None,
        use_vol_index: bool = False,
        read_chain: bool = True,
    ) -> SimVenue:
        """The venue of one currency of a multi-currency exchange: it reads that currency's wallet and
        trades on its engine; ``advance`` moves the shared clock (every currency's engine)."""
        venue = cls(
            exchange.engine(currency),
            hedge_instrument=hedge_instrument,
            use_vol_index=use_vol_index,
            read_chain=read_chain,
        )
        venue._moves_clock = exchange
        return venue

    @property
    def now(self) -> datetime:
        """The simulator's virtual clock."""
        return self.engine.now

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward (funding, settlement, fills and liquidation on the way)."""
        self._moves_clock.advance(seconds)

    def load_instruments(self) -> Mapping[str, InstrumentSpec]:
        specs = self._call(
            "load instruments",
            "public/get_instruments",
            {"currency": self.currency},
            lambda listed: {s.name: s for s in (parse_instrument(x) for x in listed) if s is not None},
        )
        if self.hedge_instrument not in specs:
            raise FatalVenueError(f"the simulator does not list the hedge instrument {self.hedge_instrument}")
        return specs

    def snapshot(self) -> AccountSnapshot:
        now = self.engine.now
        now_ms = round(now.timestamp() * 1000)
        calls = [
            ("summary", "private/get_account_summary", {"currency": self.currency}),
            ("positions", "private/get_positions", {"currency": self.currency}),
            ("book", "public/get_book_summary_by_currency", {"currency": self.currency}),
            ("ticker", "public/ticker", {"instrument_name": self.hedge_instrument}),
            ("funding", "public/get_funding_rate_value", funding_window(self.hedge_instrument, now_ms)),
        ]
        if not self.read_chain:
            del calls[2]
        if self.use_vol_index:
            vol_params = vol_index_window(self.currency, now_ms)
            calls.append(("vol_index", "public/get_volatility_index_data", vol_params))
        replies = {key: self._call(f"read {key}", method, params) for key, method, params in calls}
        with reading_reply("sim: could not read the positions"):
            missing = options_without_marks(replies["positions"], replies.get("book"))
        tickers = {
            name: self._call(f"read the ticker of {name}", "public/ticker", {"instrument_name": name})
            for name in missing
        }
        with reading_reply("sim: could not read the account snapshot"):
            return build_snapshot(
                venue=self.name,
                currency=self.currency,
                summary=replies["summary"],
                positions=replies["positions"],
                book=replies.get("book"),
                hedge_ticker=replies["ticker"],
                funding_rate_8h=float(replies["funding"]),
                vol_index=replies.get("vol_index"),
                option_tickers=tickers,
                server_times={key: now for key in replies},
                taken_at=self._clock(),
                rest_calls=len(calls) + len(tickers),
            )

    def place_order(self, request: OrderRequest) -> OrderReport:
        listed = self.engine.listed.get(request.instrument)
        if listed is None:
            raise OrderRejectedError(f"sim: the exchange does not list {request.instrument}")
        check_order(request, self._spec(request.instrument))
        params = {
            "instrument_name": request.instrument,
            "amount": repr(request.amount),
            "type": request.type.value,
            "label": request.label,
            "reduce_only": str(request.reduce_only).lower(),
            "post_only": str(request.post_only).lower(),
            "reject_post_only": str(request.post_only).lower(),
        }
        if request.type is OrderType.LIMIT:
            params["price"] = repr(request.price)
        if request.valid_until is not None:
            params["valid_until"] = str(int(request.valid_until.timestamp() * 1000))
        return self._call(
            f"place {request.side} {request.amount:g} {request.instrument} ({request.label})",
            f"private/{request.side.value}",
            params,
            lambda reply: parse_order(reply["order"], reply["trades"]),
        )

    def _spec(self, name: str) -> InstrumentSpec:
        spec = parse_instrument(instrument_json(self.engine.listed[name], self.engine))
        assert spec is not None
        return spec

    def get_order(self, *, order_id: str | None = None, label: str | None = None) -> OrderReport | None:
        if (order_id is None) == (label is None):
            raise ValueError("look an order up by exactly one of order_id or label")
        if order_id is not None:
            try:
                report = self._call(
                    f"look up order {order_id}",
                    "private/get_order_state",
                    {"order_id": order_id},
                    parse_order,
                )
            except OrderNotFoundError:
                return None
            return self._with_fee(report)
        found = self._call(
            f"look up order labelled {label}",
            "private/get_order_state_by_label",
            {"currency": self.currency, "label": str(label)},
            lambda found: latest_order([parse_order(o) for o in found]),
        )
        return None if found is None else self._with_fee(found)

    def _with_fee(self, report: OrderReport) -> OrderReport:
        """The report with its fee, read from the order's trades when its reply had none."""
        if report.fee_coin is not None:
            return report
        fee = self._call(
            f"read the trades of order {report.order_id}",
            "private/get_user_trades_by_order",
            {"order_id": report.order_id},
            lambda trades: trades_fee(trades, f"order {report.order_id}"),
        )
        return replace(report, fee_coin=fee)

    def trades_by_label(self, label: str, instrument: str) -> list[TradeReport]:
        return self._call(
            f"read the trades of {instrument} labelled {label}",
            "private/get_user_trades_by_instrument",
            {"instrument_name": instrument, "count": "100", "sorting": "desc"},
            lambda reply: [t for t in (parse_trade(x) for x in reply["trades"]) if t.label == label],
        )

    def server_time(self) -> datetime:
        return self.engine.now

    def cancel_order(self, order_id: str) -> OrderReport:
        return self._with_fee(
            self._call(f"cancel order {order_id}", "private/cancel", {"order_id": order_id}, parse_order)
        )

    def open_orders(self) -> list[OrderReport]:
        return self._call(
            "list open orders",
            "private/get_open_orders_by_currency",
            {"currency": self.currency},
            lambda found: [parse_order(o) for o in found],
        )

    def _call(
        self, what: str, method: str, params: dict[str, str], parse: Callable[[Any], Any] | None = None
    ) -> Any:
        """One JSON-RPC call: the simulator's errors translated, the reply parsed (or found unreadable)."""
        try:
            reply = self.api.call(method, params)
        except SimError as exc:
            raise _translate(f"sim: could not {what}", exc) from None
        with reading_reply(f"sim: could not {what}"):
            return reply if parse is None else parse(reply)


def funding_window(instrument: str, now_ms: int) -> dict[str, str]:
    """The parameters of ``get_funding_rate_value`` for the last 8 hours (as the ccxt venue asks)."""
    return {
        "instrument_name": instrument,
        "start_timestamp": str(now_ms - 8 * 3_600_000),
        "end_timestamp": str(now_ms),
    }


def vol_index_window(currency: str, now_ms: int) -> dict[str, str]:
    """``get_volatility_index_data`` over the last hour in minutes (as the ccxt venue asks)."""
    return {
        "currency": currency,
        "start_timestamp": str(now_ms - 3_600_000),
        "end_timestamp": str(now_ms),
        "resolution": "60",
    }


def _translate(prefix: str, exc: SimError) -> VenueError:
    detail = f" [{exc.message} {exc.code}{': ' + exc.reason if exc.reason else ''}]"
    if exc.code in _TEMPORARY:
        return TemporaryVenueError(prefix + ": temporarily unavailable" + detail)
    if exc.code in _NOT_FOUND:
        return OrderNotFoundError(prefix + ": no such order" + detail)
    if exc.code in _AUTH:
        return AccessDeniedError(prefix + ": unauthorized" + detail)
    if exc.code == 10009:
        return OrderRejectedError(prefix + ": not enough funds (margin) for this order" + detail)
    if 10000 <= exc.code < 12000:
        return OrderRejectedError(prefix + ": the exchange rejected the request" + detail)
    return FatalVenueError(prefix + ": exchange error" + detail)
