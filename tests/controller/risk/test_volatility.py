"""σ̂: 30-day ATM implied vol in total variance, and its EWMA."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from controller.risk.volatility import VolState, atm_vol_30d, atm_vol_by_expiry, smooth
from controller.venues import ChainQuote

AS_OF = datetime(2026, 1, 2, 8, tzinfo=UTC)


def chain_of(expiry_vols: dict[int, float], *, forward: float = 100.0, skew: float = 0.0) -> list[ChainQuote]:
    quotes = []
    for days, vol in expiry_vols.items():
        expiry = AS_OF + timedelta(days=days)
        for strike in (80.0, 90.0, 95.0, 105.0, 110.0, 120.0):
            iv = vol + skew * math.log(strike / forward)
            for call in (True, False):
                quotes.append(ChainQuote(f"X{days}-{strike}", expiry, strike, call, forward, iv, 0.01, AS_OF))
    return quotes


def test_flat_surface_gives_its_vol():
    estimate = atm_vol_30d(chain_of({7: 0.5, 21: 0.5, 45: 0.5, 90: 0.5}), as_of=AS_OF)
    assert estimate is not None and estimate.vol == pytest.approx(0.5)


def test_interpolation_is_linear_in_total_variance():
    estimate = atm_vol_30d(chain_of({14: 0.40, 60: 0.80}), as_of=AS_OF)
    t1, t2, t = 14 / 365, 60 / 365, 30 / 365
    w = 0.4**2 * t1 + (0.8**2 * t2 - 0.4**2 * t1) * (t - t1) / (t2 - t1)
    assert estimate.vol == pytest.approx(math.sqrt(w / t))
    assert [e.t_years for e in estimate.bracket] == pytest.approx([t1, t2])


def test_atm_is_interpolated_in_log_strike_around_the_forward():
    (expiry,) = atm_vol_by_expiry(chain_of({30: 0.6}, forward=100.0, skew=-0.3), as_of=AS_OF)
    v95, v105 = 0.6 - 0.3 * math.log(0.95), 0.6 - 0.3 * math.log(1.05)
    expected = v95 + (v105 - v95) * math.log(100 / 95) / math.log(105 / 95)
    assert expiry.atm_vol == pytest.approx(expected)


def test_beyond_the_curve_the_vol_is_held_flat_and_short_expiries_are_ignored():
    assert atm_vol_30d(chain_of({60: 0.7, 90: 0.9}), as_of=AS_OF).vol == pytest.approx(0.7)
    assert atm_vol_30d(chain_of({3: 0.2, 10: 0.3}), as_of=AS_OF).vol == pytest.approx(0.3)
    only_today = chain_of({0: 0.5})
    assert atm_vol_30d(only_today, as_of=AS_OF) is None
    assert atm_vol_30d([], as_of=AS_OF) is None


def test_expiries_whose_strikes_miss_the_forward_are_left_out():
    far = [q for q in chain_of({30: 0.6}, forward=200.0)]
    assert atm_vol_by_expiry(far, as_of=AS_OF) == []


def test_ewma_half_life():
    start = VolState()
    first = smooth(start, raw=0.5, source="chain", at=AS_OF, half_life_s=3600)
    assert first.value == 0.5 and first.raw == 0.5
    later = smooth(first, raw=0.7, source="chain", at=AS_OF + timedelta(hours=1), half_life_s=3600)
    assert later.value == pytest.approx(0.6)  # one half-life: halfway
    two_steps = smooth(
        smooth(first, raw=0.7, source="chain", at=AS_OF + timedelta(minutes=30), half_life_s=3600),
        raw=0.7,
        source="chain",
        at=AS_OF + timedelta(hours=1),
        half_life_s=3600,
    )
    assert two_steps.value == pytest.approx(later.value)  # irregular steps weigh the same
    assert (
        smooth(first, raw=0.9, source="chain", at=AS_OF, half_life_s=3600).value == 0.5
    )  # no time, no weight
    with pytest.raises(ValueError):
        smooth(first, raw=float("nan"), source="chain", at=AS_OF, half_life_s=3600)


def test_the_real_chain_gives_a_30_day_vol_between_its_bracketing_expiries(chain):
    as_of = datetime.fromtimestamp(chain.timestamp_ms.max() / 1000.0, UTC)
    quotes = chain.chain_quotes(as_of)
    estimate = atm_vol_30d(quotes, as_of=as_of)
    a, b = estimate.bracket
    assert a.expiry == datetime(2020, 5, 29, 8, tzinfo=UTC) and b.expiry == datetime(
        2020, 6, 26, 8, tzinfo=UTC
    )
    assert min(a.atm_vol, b.atm_vol) <= estimate.vol <= max(a.atm_vol, b.atm_vol)
    assert 0.5 < estimate.vol < 1.2
    # each expiry's ATM vol lies between the IVs of the two strikes that bracket its forward
    for e in estimate.expiries:
        strikes = sorted({q.strike for q in quotes if q.expiry == e.expiry})
        k0 = max(k for k in strikes if k <= e.forward)
        k1 = min(k for k in strikes if k >= e.forward)
        ivs = np.array([q.mark_iv for q in quotes if q.expiry == e.expiry and q.strike in (k0, k1)])
        assert ivs.min() - 1e-9 <= e.atm_vol <= ivs.max() + 1e-9
