"""A multi-currency exchange: one single-currency engine per currency on one virtual clock.

Deribit without cross-collateral: each currency is its own wallet.  BTC positions are margined in
BTC and ETH positions in ETH; equity, margin, funding, settlement and liquidation are per currency,
and a request names its currency (a ``currency`` parameter, or an instrument whose prefix says it).
So :class:`MultiSim` holds one unchanged :class:`~controller.sim.engine.SimExchange` per currency
and moves their clocks together; the Deribit face routes each request to its currency's engine
(:mod:`.deribit_router`).  The engines' markets are correlated paths (:mod:`.correlated`) unless
the caller gives its own (replays).  Order and trade ids are unique across the engines: every
currency but BTC prefixes them with its name (``ETH-SIM-3``), as Deribit's ETH ids are ``ETH-…``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from controller.sim.correlated import DEFAULT_RHO, CorrelatedVolPaths
from controller.sim.engine import SimExchange
from controller.sim.listing import CONTRACT_SPECS
from controller.sim.market import CURRENCY_MARKETS, StochasticVolParams
from controller.sim.model import SimConfig

__all__ = ["DEFAULT_RHO", "MultiSim", "currency_config"]


def currency_config(
    currency: str, *, base: SimConfig | None = None, market: StochasticVolParams | None = None
) -> SimConfig:
    """``base`` (seed, start, balance, margin model, listing counts) for ``currency``: Deribit's
    contract specifications, the currency's own market (``CURRENCY_MARKETS``) and its id prefix."""
    base = base or SimConfig()
    if currency not in CONTRACT_SPECS:
        raise ValueError(f"the simulator lists {' and '.join(CONTRACT_SPECS)}, not {currency!r}")
    listing = replace(base.listing, currency=currency, **CONTRACT_SPECS[currency])  # type: ignore[arg-type]
    return replace(
        base,
        listing=listing,
        market=market or CURRENCY_MARKETS[currency],
        id_prefix="" if currency == "BTC" else f"{currency}-",
    )


class MultiSim:
    """Engines of distinct currencies that share one virtual clock (``now`` is every engine's)."""

    def __init__(self, engines: Sequence[SimExchange]) -> None:
        if not engines:
            raise ValueError("a multi-currency exchange needs at least one engine")
        currencies = [e.config.currency for e in engines]
        if len(set(currencies)) != len(currencies):
            raise ValueError(f"one engine per currency, not {currencies}")
        if len({e.now for e in engines}) != 1:
            raise ValueError("the engines' clocks must start together")
        if len({e.config.id_prefix for e in engines}) != len(engines):
            raise ValueError("order ids must be unique across engines: give each its own id_prefix")
        self.engines = {e.config.currency: e for e in engines}

    @classmethod
    def correlated(cls, configs: Sequence[SimConfig], *, rho: float = DEFAULT_RHO) -> MultiSim:
        """Engines on correlated stochastic paths, seeded with the first config's seed; every config
        must start at the same time (``currency_config`` builds them)."""
        if len({c.start for c in configs}) > 1:
            raise ValueError("the currencies' configs must share one start time")
        paths = CorrelatedVolPaths(
            seed=configs[0].seed,
            start=configs[0].start,
            params={c.currency: c.market for c in configs},
            rho=rho,
        )
        return cls([SimExchange(c, path=paths.path(c.currency)) for c in configs])

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(self.engines)

    def engine(self, currency: str) -> SimExchange:
        engine = self.engines.get(currency)
        if engine is None:
            raise KeyError(f"no {currency} engine (the exchange lists {', '.join(self.engines)})")
        return engine

    @property
    def first(self) -> SimExchange:
        """The engine that answers what belongs to no currency (the time, an unknown currency)."""
        return next(iter(self.engines.values()))

    @property
    def now(self) -> datetime:
        return self.first.now

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now + timedelta(seconds=seconds))

    def advance_to(self, target: datetime) -> None:
        """Every engine to ``target``.  The wallets share nothing, so each runs its own steps to the
        target in turn: the result is that of interleaving them, and the clocks end equal."""
        for engine in self.engines.values():
            engine.advance_to(target)

    def shock(
        self, *, currency: str | None = None, price_factor: float = 1.0, vol_shift: float = 0.0
    ) -> None:
        """Shock one currency's market, or every currency's when ``currency`` is None."""
        targets = self.engines.values() if currency is None else [self.engine(currency)]
        for engine in targets:
            engine.shock(price_factor=price_factor, vol_shift=vol_shift)

    def engine_of_order(self, order_id: str) -> SimExchange | None:
        return next((e for e in self.engines.values() if order_id in e.orders), None)
