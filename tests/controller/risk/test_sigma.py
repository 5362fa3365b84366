"""σ̂'s estimators: every component each cycle, the choice, and the fallback on a cold start."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from controller.risk.realised import YEAR_S
from controller.risk.sigma import SigmaSettings, SigmaState, update

T0 = datetime(2024, 1, 1, tzinfo=UTC)
STEP = 7200.0


def feed(settings, *, days, realised_vol, implied, start=None):
    """Alternating returns of exactly ``realised_vol``, the implied vol constant: components at the end."""
    state, components = start or SigmaState(), None
    r = realised_vol * math.sqrt(STEP / YEAR_S)
    for i in range(int(days * 86400 / STEP)):
        price = 100.0 * math.exp(r * (i % 2))
        components, state = update(
            state,
            implied_raw=implied,
            implied_source="index",
            index=price,
            at=T0 + timedelta(seconds=STEP * i),
            settings=settings,
        )
    return components, state


def test_every_component_is_computed_whichever_is_chosen():
    c, _ = feed(
        SigmaSettings(estimator="implied", vrp_min_history_days=10), days=40, realised_vol=0.5, implied=0.8
    )
    assert c.implied == pytest.approx(0.8) and c.realised == pytest.approx(0.5, rel=1e-9)
    assert c.vrp_ratio == pytest.approx(0.5 / 0.8, rel=1e-6)
    assert c.implied_vrp == pytest.approx(0.5, rel=1e-6)  # implied scaled by the premium seen so far
    assert c.blend == pytest.approx(math.sqrt(0.5 * 0.5**2 + 0.5 * c.implied_vrp**2), rel=1e-12)
    assert (c.value, c.source) == (c.implied, "index")


@pytest.mark.parametrize("estimator", ["realised", "implied_vrp", "blend"])
def test_the_chosen_estimator_is_sigma_hat(estimator):
    c, _ = feed(
        SigmaSettings(estimator=estimator, vrp_min_history_days=10), days=40, realised_vol=0.5, implied=0.8
    )
    expected = {"realised": c.realised, "implied_vrp": c.implied_vrp, "blend": c.blend}[estimator]
    assert c.value == expected and c.source == estimator


def test_a_cold_start_trades_on_implied_until_history_builds_up():
    settings = SigmaSettings(estimator="realised", realised_min_history_days=2.0)
    early, state = feed(settings, days=1, realised_vol=0.5, implied=0.8)
    assert early.realised is None and early.value == pytest.approx(0.8)
    assert early.source == "index (until realised has history)"
    later, _ = feed(settings, days=3, realised_vol=0.5, implied=0.8, start=state)
    assert later.source == "realised" and later.value == pytest.approx(0.5, rel=1e-6)


def test_the_blend_weight_moves_between_the_two():
    for weight, expected in ((0.0, "implied_vrp"), (1.0, "realised")):
        c, _ = feed(
            SigmaSettings(estimator="blend", blend_weight=weight, vrp_min_history_days=10),
            days=40,
            realised_vol=0.5,
            implied=0.8,
        )
        assert c.value == pytest.approx(c.implied_vrp if expected == "implied_vrp" else c.realised, rel=1e-12)


def test_no_implied_observation_leaves_sigma_unknown_for_the_implied_estimator():
    c, _ = update(
        SigmaState(), implied_raw=None, implied_source=None, index=100.0, at=T0, settings=SigmaSettings()
    )
    assert c.value is None and c.source is None


def test_settings_refuse_what_makes_no_sense():
    with pytest.raises(ValueError, match="sigma_estimator"):
        SigmaSettings(estimator="garch")
    with pytest.raises(ValueError, match="blend_weight"):
        SigmaSettings(blend_weight=1.5)
