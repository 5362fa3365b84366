"""Every simulator reply has the shape of the reply Deribit publishes for the same method.

Each method the simulator answers is called on an account holding a perpetual and an option, with
an order resting, and its ``result`` compared field by field (names, types, nesting: ``shapes.py``)
with the fixture of that method in tests/fixtures/deribit/ (SOURCES.md says where each was read).
A difference that remains is listed in ``KNOWN`` with its reason, and docs/simulator.md states it;
the test fails when the simulator adds or drops any other field, and also when a listed difference
goes away (so the list stays true).

The account is BTC's on a single-currency simulator, and BTC's and ETH's on a two-currency one
(each request routed to its currency's engine, :mod:`controller.sim.deribit_router`): ETH's replies
have the same published shapes as BTC's.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from controller.sim import SimConfig, SimExchange
from controller.sim.deribit_api import DeribitApi
from controller.sim.deribit_router import DeribitRouter
from controller.sim.listing import Listed
from controller.sim.multi import MultiSim, currency_config
from controller.sim.replies import ms
from controller.sim.server import SimServer
from tests.controller.sim.shapes import differences, fixture


def result(name: str) -> Any:
    return fixture(name)["result"]


def union(*objects: dict[str, Any]) -> dict[str, Any]:
    """One object with every field of several replies of the same schema object (later ones win)."""
    merged: dict[str, Any] = {}
    for o in objects:
        merged.update(o)
    return merged


# The order object: one schema shared by buy/sell/cancel/get_order_state/get_open_orders_*; its
# published examples are of different years, so the real shape is the union of the current ones.
REAL_ORDER = union(
    result("private__get_order_state"),
    result("private__get_open_orders_by_currency")[0],
    result("private__sell")["order"],
    result("private__buy")["order"],
)
ORDER_SCHEMA_ONLY = {
    "extra contracts": "in the order schema ('may be absent in historical data'), not in the 2019-20 examples",
    "extra mmp": "in the order schema, not in the examples",
    "extra risk_reducing": "in the order schema, not in the examples",
}
# The account's own fields (extended=true): at the top of get_account_summaries, inside the summary
# of get_account_summary; the rest is the summary object, the union of its two published examples.
ACCOUNT_LEVEL = set(result("private__get_account_summaries")) - {"summaries"}
REAL_SUMMARY = {
    k: v
    for k, v in union(
        result("private__get_account_summary"), result("private__get_account_summaries")["summaries"][0]
    ).items()
    if k not in ACCOUNT_LEVEL and k != "fees"  # fees: get_account_summaries' summaries only
}

KNOWN: dict[str, dict[str, str]] = {
    "get_instrument option": {
        "missing rfq": "rfq is in the legacy examples only, dropped from the current schema and examples",
        "extra state": "state ('open') is in the current schema and future examples, not in this 2023 option",
    },
    "get_book_summary_by_currency future": {
        "missing mark_iv": "the legacy futures lines carry mark_iv 80 on a future; meaningless, not sent",
    },
    "get_book_summary_by_currency perpetual": {
        "missing mark_iv": "the legacy futures lines carry mark_iv 80 on a future; meaningless, not sent",
    },
    "get_book_summary_by_currency option": {
        "extra mark_iv": "mark_iv is in the schema (not required); all four published option lines lack it",
    },
    "get_book_summary_by_instrument": {
        "extra [].mark_iv": "mark_iv is in the schema (not required); all four published option lines lack it",
    },
    "cancel": {
        "missing triggered": "the published cancel is of a stop order: the simulator has no trigger orders",
        "missing trigger": "the published cancel is of a stop order: the simulator has no trigger orders",
        "missing trigger_price": "the published cancel is of a stop order: the simulator has no trigger orders",
        "extra filled_amount": "an untriggered stop order has no filled_amount; a cancelled limit order has",
        "extra average_price": "an untriggered stop order has no average_price; a cancelled limit order has",
        "type price.: real string, sim number": "a stop market order's price is 'market_price'",
        "extra replaced": "in the current order examples (buy, sell), not in this 2019 one",
        "extra web": "in the current order examples (buy, sell), not in this 2019 one",
    },
}


ACCOUNTS = {  # (currency, on a two-currency exchange)
    "BTC": ("BTC", False),
    "BTC of BTC+ETH": ("BTC", True),
    "ETH of BTC+ETH": ("ETH", True),
}


@pytest.fixture(scope="module", params=list(ACCOUNTS))
def account(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """An engine a day in, holding the perpetual and a short option, with one option order resting."""
    currency, routed = ACCOUNTS[request.param]
    config = SimConfig(seed=11, initial_balance=50.0)
    api: DeribitApi | DeribitRouter
    if routed:
        multi = MultiSim.correlated([currency_config(c, base=config) for c in ("BTC", "ETH")])
        engine, api = multi.engine(currency), DeribitRouter(multi)
        multi.advance(86400 * 1.2)
    else:
        engine = SimExchange(config)
        api = DeribitApi(engine)
        engine.advance(86400 * 1.2)
    perp = f"{currency}-PERPETUAL"
    tick = engine.instrument(perp).tick_size
    flat_perp = api.call("private/get_position", {"instrument_name": perp})
    bought = api.call(
        "private/buy", {"instrument_name": perp, "amount": "1000", "type": "market", "label": "l1"}
    )
    option = _near_the_money_call(engine)
    sold = api.call("private/sell", {"instrument_name": option.name, "amount": "1", "type": "market"})
    limit = round(engine.quote(perp).mark_price * 0.9985 / tick) * tick  # below the bid: it trades
    reduced = api.call(
        "private/sell",
        {"instrument_name": perp, "amount": "500", "type": "limit", "price": f"{limit:.2f}"}
        | {"reduce_only": "true"},
    )
    low = round(engine.quote(option.name).mark_price * 0.5 / 0.0005) * 0.0005
    resting = api.call(
        "private/buy", {"instrument_name": option.name, "amount": "1", "type": "limit", "price": str(low)}
    )
    to_cancel = api.call(
        "private/buy", {"instrument_name": option.name, "amount": "2", "type": "limit", "price": str(low)}
    )
    future = next(x for x in engine.instruments(kind="future") if not x.is_perpetual)
    yield {
        "currency": currency,
        "engine": engine,
        "api": api,
        "option": option,
        "future": future,
        "flat_perp": flat_perp,
        "bought": bought,
        "sold": sold,
        "reduced": reduced,
        "resting": resting,
        "cancelled": api.call("private/cancel", {"order_id": to_cancel["order"]["order_id"]}),
    }


def _near_the_money_call(engine: SimExchange) -> Listed:
    index = engine.market().index
    calls = [x for x in engine.instruments(kind="option") if x.is_call]
    return min(calls, key=lambda x: (x.expiry, abs((x.strike or 0.0) - index)))


def _cases(a: dict[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(case, real, simulator's) for every method the simulator answers."""
    api: DeribitApi | DeribitRouter = a["api"]
    engine: SimExchange = a["engine"]
    option, future = a["option"].name, a["future"].name
    currency = a["currency"]
    perp = f"{currency}-PERPETUAL"
    now = ms(engine.now)
    window = {"start_timestamp": str(now - 86_400_000), "end_timestamp": str(now)}
    instruments = {
        i["instrument_name"]: i for i in api.call("public/get_instruments", {"currency": currency})
    }
    book = {
        b["instrument_name"]: b
        for b in api.call("public/get_book_summary_by_currency", {"currency": currency})
    }
    positions = {p["instrument_name"]: p for p in api.call("private/get_positions", {"currency": currency})}
    real_futures = result("public__get_instruments.future")
    real_lines = result("public__get_book_summary_by_currency.future")
    real_trades = result("private__get_user_trades_by_instrument")["trades"]
    perp_trades = api.call(  # the last: the unlabelled reduce-only sell
        "private/get_user_trades_by_instrument", {"instrument_name": perp, "count": "1"}
    )
    option_trades = api.call("private/get_user_trades_by_instrument", {"instrument_name": option})
    unlabelled = a["reduced"]["order"]["order_id"]  # Deribit's trade has a label only if its order had one

    yield "get_time", result("public__get_time"), api.call("public/get_time", {})
    yield (
        "auth",
        result("public__auth"),
        api.call("public/auth", {"grant_type": "client_credentials", "client_id": "levctl-sim"}),
    )
    yield "get_currencies", result("public__get_currencies"), api.call("public/get_currencies", {})
    yield "get_instruments future", real_futures[0], instruments[future]
    yield "get_instruments perpetual", real_futures[1], instruments[perp]
    yield "get_instrument option", result("public__get_instrument.option"), instruments[option]
    yield (
        "ticker perpetual",
        result("public__ticker.perpetual"),
        api.call("public/ticker", {"instrument_name": perp}),
    )
    yield (
        "ticker option",
        result("public__ticker.option"),
        api.call("public/ticker", {"instrument_name": option}),
    )
    yield "get_book_summary_by_currency future", real_lines[0], book[future]
    yield "get_book_summary_by_currency perpetual", real_lines[1], book[perp]
    option_line = result("public__get_book_summary_by_currency.option")[0]
    yield "get_book_summary_by_currency option", option_line, book[option]
    yield (
        "get_book_summary_by_instrument",
        result("public__get_book_summary_by_instrument.option_2024"),
        api.call("public/get_book_summary_by_instrument", {"instrument_name": option}),
    )
    yield (
        "get_funding_rate_value",
        result("public__get_funding_rate_value"),
        api.call("public/get_funding_rate_value", {"instrument_name": perp, **window}),
    )
    yield (
        "get_index_price",
        result("public__get_index_price"),
        api.call("public/get_index_price", {"index_name": f"{currency.lower()}_usd"}),
    )
    yield (
        "get_volatility_index_data",
        result("public__get_volatility_index_data"),
        api.call("public/get_volatility_index_data", {"currency": currency, "resolution": "60", **window}),
    )
    yield (
        "get_account_summary",
        _keyed_for(currency, REAL_SUMMARY | _account_fields("private__get_account_summary")),
        api.call("private/get_account_summary", {"currency": currency, "extended": "true"}),
    )
    summaries = api.call("private/get_account_summaries", {"extended": "true"})
    for summary in summaries["summaries"]:  # one per currency, each keyed by its own index
        yield (
            "get_account_summaries",
            result("private__get_account_summaries")
            | {"summaries": [_keyed_for(summary["currency"], REAL_SUMMARY | {"fees": _fees()})]},
            summaries | {"summaries": [summary]},
        )
    yield "get_positions", result("private__get_positions")[0], positions[perp]
    yield "get_position (flat)", result("private__get_position"), a["flat_perp"]
    yield "buy", result("private__buy") | {"order": REAL_ORDER}, a["bought"]
    yield "sell", result("private__sell") | {"order": REAL_ORDER}, a["reduced"]
    yield "cancel", result("private__cancel"), a["cancelled"]
    yield (
        "get_order_state",
        REAL_ORDER,
        api.call("private/get_order_state", {"order_id": a["bought"]["order"]["order_id"]}),
    )
    yield (
        "get_order_state_by_label",
        [REAL_ORDER],
        api.call("private/get_order_state_by_label", {"currency": currency, "label": "l1"}),
    )
    yield (
        "get_open_orders_by_currency",
        [REAL_ORDER],
        api.call("private/get_open_orders_by_currency", {"currency": currency}),
    )
    yield (
        "get_open_orders_by_instrument",
        [REAL_ORDER],
        api.call("private/get_open_orders_by_instrument", {"instrument_name": option}),
    )
    yield (
        "get_user_trades_by_instrument option",
        {"trades": [real_trades[0]], "has_more": False},
        option_trades,
    )
    yield "get_user_trades_by_instrument future", {"trades": [real_trades[1]], "has_more": False}, perp_trades
    yield (
        "get_user_trades_by_order",
        result("private__get_user_trades_by_order"),
        api.call("private/get_user_trades_by_order", {"order_id": unlabelled}),
    )


def _keyed_for(currency: str, real: dict[str, Any]) -> dict[str, Any]:
    """The published BTC summary's maps keyed by ``currency``'s index (``eth_usd`` for ETH)."""
    index = f"{currency.lower()}_usd"
    return {
        k: {index if key == "btc_usd" else key: x for key, x in v.items()} if isinstance(v, dict) else v
        for k, v in real.items()
    }


def _account_fields(name: str) -> dict[str, Any]:
    return {k: v for k, v in result(name).items() if k in ACCOUNT_LEVEL}


def _fees() -> Any:
    return result("private__get_account_summaries")["summaries"][0]["fees"]


def _known(case: str) -> dict[str, str]:
    known = dict(KNOWN.get(case, {}))
    if case in ("buy", "sell"):
        known |= {f"extra order.{k.split(' ', 1)[1]}": why for k, why in ORDER_SCHEMA_ONLY.items()}
    elif case in ("get_order_state", "cancel"):
        known |= ORDER_SCHEMA_ONLY
    elif case.startswith(("get_order_state_by_label", "get_open_orders")):
        known |= {f"extra [].{k.split(' ', 1)[1]}": why for k, why in ORDER_SCHEMA_ONLY.items()}
    return known


def test_every_method_the_simulator_answers_is_compared(account):
    compared = {case.split(" ")[0] for case, _, _ in _cases(account)}
    answered = {m.split("/", 1)[1] for m in DeribitApi(account["engine"])._methods}
    assert answered <= compared


def test_each_reply_has_the_published_shape(account):
    failures = []
    for case, real, sim in _cases(account):
        found = differences(real, sim)
        known = set(_known(case))
        if found != known:
            failures.append(
                f"{case}: unexpected {sorted(found - known)}; listed but gone {sorted(known - found)}"
            )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("currency", ["BTC", "ETH"])
def test_the_envelopes_are_deribits(currency):
    """A success and the two published error envelopes, over HTTP, compared with the fixtures (ETH's
    from a two-currency simulator)."""
    config = SimConfig(seed=3)
    exchange: SimExchange | MultiSim = SimExchange(config)
    if currency == "ETH":
        exchange = MultiSim.correlated([currency_config(c, base=config) for c in ("BTC", "ETH")])
    with SimServer(exchange, port=0, speed=0.0) as server:
        ok = _get(server.url + "/api/v2/public/get_time")
        bad = _get(
            server.url + f"/api/v2/private/get_account_summary?currency={currency}"
        )  # no Authorization
        missing = _get(server.url + "/api/v2/public/get_book_summary_by_currency")
    assert differences(fixture("public__get_time.ccxt"), ok) == set()
    assert differences(fixture("errors__invalid_params_-32602"), missing) == set()
    assert missing["error"]["code"] == -32602 and missing["error"]["data"]["param"] == "currency"
    # Deribit's 13009 has no data; the simulator says why it refused (documented in docs/simulator.md)
    assert differences(fixture("errors__unauthorized_13009"), bad) == {"extra error.data"}


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as exc:
        return json.load(exc)
