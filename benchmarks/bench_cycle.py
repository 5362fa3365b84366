"""The controller's cycle on a realistic book, phase by phase (imported by bench.py).

The book: N positions, N − 1 of them distinct options across expiries and strikes (the N − 1 nearest
the money in standard deviations), long and short (seeded), plus a short perpetual; the venue
replies (account summary, positions, the whole chain's book summary, the hedge ticker, funding) come
from the simulator's Deribit face and are parsed every cycle.  The account's maintenance margin is
set so that the liquidation point lies 50–66 % away: the liquidation search then does its full work.

Phases, as the loop runs them: parse (the replies → a snapshot), risk (``assess``: book greeks, σ̂
from the chain, 47 scenarios, stressed leverage, liquidation), policy and record (``decide``, the
executor, the journal's record), journal (one SQLite transaction), with the garbage collector set as
``levctl run`` sets it around its loop (:mod:`controller.loop.runtime`).  The floor beside them, measured
in the same run, is the least arithmetic any implementation must do: one ``pricing.greeks`` call on
the N − 1 options and one ``pricing.black_price`` call on them under the 47 scenarios and a 41-point
liquidation scan.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from bench_product import start_bench_run

import pricing

SIZES = (100, 1000, 10_000)
BestOf = Callable[[Callable[[], object], int], float]
LIQUIDATION_MOVE = -0.58  # where the maintenance margin is set to bite


def _engine_listing(n_options: int) -> Any:
    """The simulator with the smallest of three listings (about 520, 1,130, 12,400 options) holding ``n_options``."""
    from controller.sim import SimConfig, SimExchange
    from controller.sim.listing import ListingParams

    for params in (
        ListingParams(),
        ListingParams(weeklies=4, monthlies=4, quarterlies=4, strikes_each_side=40),
        ListingParams(weeklies=6, monthlies=6, quarterlies=6, strikes_each_side=400),
    ):
        engine = SimExchange(SimConfig(initial_balance=10.0 * n_options, listing=params))
        if len(engine.instruments(kind="option")) >= n_options:
            return engine
    raise ValueError(f"no listing holds {n_options} options")


def realistic_replies(size: int, seed: int = 14) -> tuple[dict[str, Any], Any, Any]:
    """Deribit-shaped replies of one snapshot for a book of ``size`` positions, and the engine's now."""
    from controller.sim.deribit_api import DeribitApi
    from controller.venues.sim import funding_window

    engine = _engine_listing(size - 1)
    index = engine.market().index
    now = engine.now
    options = engine.instruments(kind="option")
    quotes = {q.name: q for q in engine.quotes(kind="option")}

    def distance(x: Any) -> float:  # standard deviations from the money
        t = max((x.expiry - now).total_seconds() / (365 * 86400), 1 / 365)
        return abs(math.log(x.strike / quotes[x.name].underlying_price)) / (0.6 * math.sqrt(t))

    chosen = sorted(options, key=distance)[: size - 1]
    rng = np.random.default_rng(seed)
    lots = rng.integers(1, 11, size - 1) * np.where(rng.random(size - 1) < 0.55, -1, 1)
    for x, n_lots in zip(chosen, lots, strict=True):  # filled directly: no margin check per order
        amount = abs(int(n_lots)) * x.min_amount
        direction = "buy" if n_lots > 0 else "sell"
        order = engine.book.create(
            label="bench",
            name=x.name,
            direction=direction,
            amount=amount,
            order_type="market",
            price=None,
            post_only=False,
            reduce_only=False,
            now=now,
        )
        engine.wallet.fill(
            order,
            x,
            amount,
            quotes[x.name].mark_price,
            liquidity="T",
            quote=quotes[x.name],
            fees=engine.config.fees,
            now=now,
        )
    engine.place_order(
        name="BTC-PERPETUAL", direction="sell", amount=round(size * index / 100, -1), label="bench"
    )
    api = DeribitApi(engine)
    currency = engine.config.currency
    replies = {
        "summary": api.call("private/get_account_summary", {"currency": currency}),
        "positions": api.call("private/get_positions", {"currency": currency}),
        "book": api.call("public/get_book_summary_by_currency", {"currency": currency}),
        "ticker": api.call("public/ticker", {"instrument_name": "BTC-PERPETUAL"}),
        "funding": api.call(
            "public/get_funding_rate_value", funding_window("BTC-PERPETUAL", round(now.timestamp() * 1000))
        ),
    }
    return replies, now, engine


def _parse(replies: dict[str, Any], now: Any) -> Any:
    from controller.venues.deribit_json import build_snapshot

    return build_snapshot(
        venue="sim",
        currency="BTC",
        summary=replies["summary"],
        positions=replies["positions"],
        book=replies["book"],
        hedge_ticker=replies["ticker"],
        funding_rate_8h=float(replies["funding"]),
        server_times={key: now for key in replies},
        taken_at=now,
        rest_calls=len(replies),
    )


def _set_liquidation_point(replies: dict[str, Any], now: Any) -> None:
    """Maintenance margin := equity (coin) after the move LIQUIDATION_MOVE, so liquidation is there or nearer."""
    from controller.risk.scenarios import Revaluation

    snap = _parse(replies, now)
    reval = Revaluation(snap.positions, index=snap.index_price, equity_coin=snap.equity_coin, as_of=now)
    moves = np.array([LIQUIDATION_MOVE, -LIQUIDATION_MOVE])
    replies["summary"] = {
        **replies["summary"],
        "maintenance_margin": float(np.min(reval.equity_coin_at(moves))),
    }


def bench_cycle(best_of: BestOf, repeats: int, sizes: tuple[int, ...] = SIZES) -> dict[str, float]:
    from controller.journal import Journal
    from controller.loop.runtime import fewer_collections

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "bench.db")
        for size in sizes:
            repeat = repeats if size < 10_000 else max(2, repeats // 2)
            with fewer_collections():  # as `levctl run` runs its cycles
                figures.update(_measure(size, journal, best_of, repeat))
            if size == max(sizes):  # the same cycle under the interpreter's default collector settings
                figures[f"cycle_ms_default_gc_{size}"] = _measure(size, journal, best_of, repeat)[
                    f"cycle_ms_{size}"
                ]
        journal.close()
    return figures


def _measure(size: int, journal: Any, best_of: BestOf, repeats: int) -> dict[str, float]:
    from controller.config import load_config
    from controller.execution import DryRunExecutor, plan_orders
    from controller.records import cycle_record
    from controller.risk.assess import RiskState, assess
    from controller.risk.policy import PolicyState, decide
    from controller.venues.sim import SimVenue

    config = load_config(None)
    run_id = start_bench_run(journal, config.sim_settings().start)
    replies, now, engine = realistic_replies(size)
    _set_liquidation_point(replies, now)
    spec = SimVenue(engine).load_instruments()["BTC-PERPETUAL"]
    clock = now + timedelta(seconds=1)
    snap = _parse(replies, now)
    report, _ = assess(snap, config.risk, RiskState(), now=clock)
    executor = DryRunExecutor()

    def policy_and_record(snap: Any = snap, report: Any = report) -> Any:
        decision, _ = decide(
            report, snap, spec, config.policy, config.guards, config.advice, PolicyState(), now=clock
        )
        planned = plan_orders(
            decision, snap, label_prefix="b", run_key="bench", run_id=run_id, n=1, now=clock
        )
        execution = executor.execute(planned, gate=lambda order: None)
        return cycle_record(run_id, 1, clock, snap, report, decision, execution, 0.0)

    record = policy_and_record()

    def cycle() -> None:
        parsed = _parse(replies, now)
        risk, _ = assess(parsed, config.risk, RiskState(), now=clock)
        journal.write_cycle(policy_and_record(parsed, risk))

    warm = _warm_state(snap, now)

    def cycle_with_var() -> None:
        parsed = _parse(replies, now)
        risk, _ = assess(parsed, config.risk, warm, now=clock)
        journal.write_cycle(policy_and_record(parsed, risk))

    floor = _floor(snap, now)
    return {
        f"cycle_ms_with_var_{size}": best_of(cycle_with_var, repeats) * 1e3,
        f"cycle_parse_ms_{size}": best_of(lambda: _parse(replies, now), repeats) * 1e3,
        f"cycle_risk_ms_{size}": best_of(lambda: assess(snap, config.risk, RiskState(), now=clock), repeats)
        * 1e3,
        f"cycle_policy_record_ms_{size}": best_of(policy_and_record, repeats) * 1e3,
        f"cycle_journal_ms_{size}": best_of(lambda: journal.write_cycle(record), repeats) * 1e3,
        f"cycle_ms_{size}": best_of(cycle, repeats) * 1e3,
        f"cycle_floor_ms_{size}": best_of(floor, repeats) * 1e3,
        f"cycle_liquidation_move_{size}": report.liquidation_move,
        f"cycle_chain_options_{size}": len(snap.chain),
    }


def _warm_state(snap: Any, now: Any) -> Any:
    """A controller's state after a year of running: 366 daily closes (a seeded random path at 3 %
    a day), so that assess adds the 1-day VaR by full revaluation on 365 historical scenarios."""
    from controller.risk.assess import RiskState
    from controller.risk.var import DailyCloses, record_close

    rng = np.random.default_rng(13)
    closes = snap.index_price * np.exp(np.cumsum(rng.normal(0.0, 0.03, 367)))
    history = DailyCloses()
    for back, close in zip(range(366, -1, -1), closes, strict=True):
        history = record_close(
            history, at=now - timedelta(days=back), index=float(close), implied=0.6, window_days=365
        )
    return RiskState(history=history)


def _floor(snap: Any, now: Any) -> Callable[[], object]:
    """Bare numpy: Black-76 greeks of the options once, and their prices under the 47 scenarios and a
    41-point scan (ln(F/K) and σ·√t once per option) — the arithmetic any implementation must do."""
    from scipy.special import ndtr

    from controller.risk.scenarios import deribit_pm_grid, span_grid

    options = [p for p in snap.positions if isinstance(p.instrument, pricing.Option)]
    fwd = np.array([p.underlying_price for p in options])
    strike = np.array([p.instrument.strike for p in options])
    t = np.array([pricing.year_fraction(start=now, end=p.instrument.expiry) for p in options])
    vol = np.array([p.mark_iv for p in options])
    w = np.where([p.instrument.is_call for p in options], 1.0, -1.0)
    grid = deribit_pm_grid() + span_grid()
    scan = np.concatenate([[0.0], np.geomspace(1e-4, 9, 20), -np.geomspace(1e-4, 0.99, 20)])
    moves = 1.0 + np.concatenate([[s.price_move for s in grid], scan])
    shifts = 1.0 + np.concatenate([[s.vol_shift for s in grid], np.zeros(scan.size)])  # per option: same work

    def floor() -> None:
        pricing.greeks(forward=fwd, strike=strike, t_years=t, vol=vol, is_call=w > 0)
        sd = vol * np.sqrt(t)
        s = np.multiply.outer(shifts, sd)
        d1 = (np.log(fwd / strike) + np.log(moves)[:, None]) / s + 0.5 * s
        w * (np.multiply.outer(moves, fwd) * ndtr(w * d1) - strike * ndtr(w * (d1 - s)))

    return floor


def cycle_lines(f: dict[str, Any]) -> list[str]:
    lines = ["cycle on a realistic book (N−1 distinct options long and short + a perpetual; parse included):"]
    for size in SIZES:
        if f"cycle_ms_{size}" not in f:
            continue
        goal = {100: "   goal <= 5 ms", 1000: "   goal <= 40 ms", 10_000: "   goal <= 350 ms"}.get(size, "")
        lines.append(
            f"  {size:>6,} positions: {f[f'cycle_ms_{size}']:7.1f} ms = parse {f[f'cycle_parse_ms_{size}']:.1f}"
            f" + risk {f[f'cycle_risk_ms_{size}']:.1f} + policy/record {f[f'cycle_policy_record_ms_{size}']:.1f}"
            f" + journal {f[f'cycle_journal_ms_{size}']:.1f}; arithmetic floor {f[f'cycle_floor_ms_{size}']:.2f} ms"
            f" -> {f[f'cycle_ms_{size}'] / f[f'cycle_floor_ms_{size}']:.1f}x the floor{goal}"
        )
        if f"cycle_ms_with_var_{size}" in f:
            lines.append(
                f"          with a year of history (1-day VaR/ES by full revaluation on 365 days): "
                f"{f[f'cycle_ms_with_var_{size}']:.1f} ms"
            )
        if f"cycle_ms_default_gc_{size}" in f:
            lines.append(
                f"          the same cycle under CPython's default collector thresholds (700, 10, 10): "
                f"{f[f'cycle_ms_default_gc_{size}']:.1f} ms"
            )
        lines.append(
            f"          chain {f[f'cycle_chain_options_{size}']:,} options; liquidation move "
            f"{f[f'cycle_liquidation_move_{size}']:+.1%}"
        )
    return lines
