"""The account's margin under its margin model (an account setting, as on Deribit).

* ``standard``: Deribit's standard margin, position by position (:mod:`.margin`), summed.
* ``portfolio``: Deribit's segregated portfolio margin (:mod:`.portfolio_margin`): the portfolio's
  worst loss over the scenario tables plus the roll shock; a position's own figures are those of
  the position held alone.

Positions are given as ``{name: size}`` with the listing and quotes they are marked by, so the
same function answers "what is the margin now" and "what would it be with this size" (an order's
margin check, the liquidation engine's search).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np

from controller.sim.listing import Listed
from controller.sim.margin import future_margins, option_margins
from controller.sim.model import SimConfig, SimQuote
from controller.sim.portfolio_margin import (
    PMInstrument,
    RiskVectors,
    margins,
    portfolio_margin,
    risk_vectors,
)
from pricing import year_fraction
from pricing.portfolio_margin import PM_PARAMS

Quotes = Mapping[str, SimQuote]


class MarginModel:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.portfolio = config.margin_model == "portfolio"
        self.pm_params = PM_PARAMS[config.currency]
        self._vectors: dict[tuple[object, str], RiskVectors] = {}  # per marks generation

    def position(
        self, listed: Listed, size: float, quote: SimQuote, *, now: datetime, key: object
    ) -> tuple[float, float]:
        """(initial, maintenance) margin in coin of one position held alone."""
        if size == 0.0:
            return 0.0, 0.0
        if self.portfolio:
            return self.account(
                {listed.name: size}, {listed.name: listed}, {listed.name: quote}, now=now, key=key
            )
        return standard_margins(listed, size, quote, self.config)

    def account(
        self,
        sizes: Mapping[str, float],
        listed: Mapping[str, Listed],
        quotes: Quotes,
        *,
        now: datetime,
        key: object,
    ) -> tuple[float, float]:
        """(initial, maintenance) margin in coin of the account holding ``sizes``."""
        held = {n: s for n, s in sizes.items() if s != 0.0}
        if not held:
            return 0.0, 0.0
        if not self.portfolio:
            im = mm = 0.0
            for name, size in held.items():
                i, m = standard_margins(listed[name], size, quotes[name], self.config)
                im, mm = im + i, mm + m
            return im, mm
        names = sorted(held)
        vectors = self._risk_vectors(names, listed, quotes, now=now, key=key)
        index = quotes[names[0]].index_price
        pm = portfolio_margin(vectors, np.array([held[n] for n in names]), self.pm_params, index=index)
        return margins(pm, self.pm_params)

    def _risk_vectors(
        self, names: list[str], listed: Mapping[str, Listed], quotes: Quotes, *, now: datetime, key: object
    ) -> RiskVectors:
        """Each instrument's vector is computed once per marks generation (``key``), then stacked."""
        rows = []
        for name in names:
            cached = self._vectors.get((key, name))
            if cached is None:
                if len(self._vectors) > 4096:
                    self._vectors.clear()
                cached = risk_vectors([_pm_instrument(listed[name], quotes[name], now)], self.pm_params)
                self._vectors[(key, name)] = cached
            rows.append(cached)
        return RiskVectors(
            tuple(names),
            np.vstack([r.standard for r in rows]),
            np.vstack([r.extended for r in rows]),
            np.concatenate([r.roll for r in rows]),
        )


def _pm_instrument(listed: Listed, quote: SimQuote, now: datetime) -> PMInstrument:
    if listed.kind != "option":
        return PMInstrument(listed.name, mark=quote.mark_price)
    assert listed.expiry is not None and listed.strike is not None
    return PMInstrument(
        listed.name,
        mark=quote.mark_price,
        forward=quote.underlying_price,
        strike=listed.strike,
        is_call=bool(listed.is_call),
        t_years=max(year_fraction(start=now, end=listed.expiry), 0.0),
        iv=quote.mark_iv or 0.0,
    )


def standard_margins(listed: Listed, size: float, quote: SimQuote, config: SimConfig) -> tuple[float, float]:
    """(initial, maintenance) margin in coin of a position of ``size`` at this quote (standard margin)."""
    if size == 0.0:
        return 0.0, 0.0
    if listed.kind == "option":
        if listed.strike is None:
            raise ValueError(f"{listed.name} has no strike")
        return option_margins(
            size=size,
            mark_coin=quote.mark_price,
            underlying=quote.underlying_price,
            strike=listed.strike,
            is_call=bool(listed.is_call),
            params=config.margin,
        )
    return future_margins(size_usd=size, mark=quote.mark_price, params=config.margin)
