"""The Deribit face of a multi-currency exchange: each request to the engine of its currency.

One :class:`~controller.sim.deribit_api.DeribitApi` per engine answers as the single-currency
simulator does; the router only picks which, by what the request names:

* a ``currency`` parameter (``get_account_summary``, ``get_book_summary_by_currency`` …); where
  Deribit allows it to be absent or ``any`` (``get_instruments``, ``get_positions``,
  ``get_order_state_by_label``) every engine answers and the lists are joined;
* an ``instrument_name``, by its prefix (``ETH-PERPETUAL``, ``ETH-27MAR26-3000-C``);
* an ``index_name`` (``btc_usd``, ``eth_usd``);
* an ``order_id``: the engine that holds it (ids are unique across engines, :mod:`.multi`);
* ``get_account_summaries``: one summary per currency; ``get_currencies``: every currency.

What names no engine (an unknown currency or instrument, a missing parameter, an unknown order)
goes to the first engine, which refuses it exactly as the single-currency simulator does.  With one
engine the router passes every request straight through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from controller.sim.deribit_api import DeribitApi
from controller.sim.engine import SimExchange
from controller.sim.multi import MultiSim

Params = Mapping[str, str]

BY_CURRENCY = frozenset(
    {
        "public/get_book_summary_by_currency",
        "public/get_volatility_index_data",
        "private/get_account_summary",
        "private/get_open_orders_by_currency",
    }
)
BY_CURRENCY_OR_EVERY = frozenset(
    {"public/get_instruments", "private/get_positions", "private/get_order_state_by_label"}
)
BY_INSTRUMENT = frozenset(
    {
        "public/ticker",
        "public/get_book_summary_by_instrument",
        "public/get_funding_rate_value",
        "private/get_position",
        "private/buy",
        "private/sell",
        "private/get_open_orders_by_instrument",
        "private/get_user_trades_by_instrument",
    }
)
BY_ORDER = frozenset({"private/cancel", "private/get_order_state", "private/get_user_trades_by_order"})
EVERY = frozenset({"public/get_currencies"})


class DeribitRouter:
    """``call(method, params)`` as :class:`DeribitApi`, over every engine of a :class:`MultiSim`."""

    def __init__(self, exchange: MultiSim) -> None:
        self.exchange = exchange
        self.apis = {c: DeribitApi(e) for c, e in exchange.engines.items()}
        self._first = next(iter(self.apis.values()))

    def api(self, currency: str) -> DeribitApi:
        return self.apis[currency]

    def call(self, method: str, params: Params) -> Any:
        if len(self.apis) == 1:
            return self._first.call(method, params)
        if method == "private/get_account_summaries":
            return self._account_summaries(params)
        if method in EVERY:
            return self._joined(method, params, self.apis.values())
        if method in BY_CURRENCY_OR_EVERY and params.get("currency") in (None, "any"):
            return self._joined(method, params, self.apis.values())
        return self._route(method, params).call(method, params)

    def _route(self, method: str, params: Params) -> DeribitApi:
        key: Callable[[Params], str | None] | None = None
        if method in BY_CURRENCY or method in BY_CURRENCY_OR_EVERY:
            key = _currency
        elif method in BY_INSTRUMENT:
            key = _instrument_currency
        elif method == "public/get_index_price":
            key = _index_currency
        elif method in BY_ORDER:
            key = self._order_currency
        currency = None if key is None else key(params)
        return self.apis.get(currency or "", self._first)

    def _order_currency(self, params: Params) -> str | None:
        engine: SimExchange | None = self.exchange.engine_of_order(params.get("order_id") or "")
        return None if engine is None else engine.config.currency

    def _joined(self, method: str, params: Params, apis: Iterable[DeribitApi]) -> list[Any]:
        return [item for api in apis for item in api.call(method, params)]

    def _account_summaries(self, params: Params) -> dict[str, Any]:
        replies = [api.call("private/get_account_summaries", params) for api in self.apis.values()]
        return {**replies[0], "summaries": [s for reply in replies for s in reply["summaries"]]}


def _currency(params: Params) -> str | None:
    return params.get("currency")


def _instrument_currency(params: Params) -> str | None:
    return (params.get("instrument_name") or "").partition("-")[0] or None


def _index_currency(params: Params) -> str | None:
    return (params.get("index_name") or "").partition("_")[0].upper() or None
