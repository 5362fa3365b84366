"""The risk engine and the leverage policy: pure functions of a snapshot, the config and explicit state.

* :mod:`.assess` — a snapshot's risk report: book greeks, leverage (L, L_iv, L_stress), σ̂, margin,
  scenarios and the move to liquidation;
* :mod:`.volatility` — the volatility signal σ̂ (30-day ATM implied vol, EWMA);
* :mod:`.scenarios` — full revaluation on Deribit's portfolio-margin grid and CME SPAN's scenarios;
* :mod:`.policy` — the volatility-scaled target band and the guards: a :class:`Decision`;
* :mod:`.advice` — options limits (dollar gamma, vega, worst loss) as advice in words and sizes.
"""

from controller.risk.advice import Advice, AdviceLimits, options_advice
from controller.risk.assess import AccountStateError, GreeksCheck, RiskReport, RiskSettings, RiskState, assess
from controller.risk.policy import (
    Action,
    Decision,
    GuardSettings,
    InFlightOrder,
    Mode,
    PlannedOrder,
    PolicySettings,
    PolicyState,
    RebalanceTo,
    TradingState,
    decide,
    target_leverage,
)
from controller.risk.pretrade import Denial, check
from controller.risk.scenarios import Revaluation, Scenario, ScenarioResult, deribit_pm_grid, span_grid
from controller.risk.volatility import AtmVolEstimate, VolState, atm_vol_30d, smooth

__all__ = [
    "AccountStateError",
    "Action",
    "Advice",
    "AdviceLimits",
    "AtmVolEstimate",
    "Decision",
    "Denial",
    "GreeksCheck",
    "GuardSettings",
    "InFlightOrder",
    "Mode",
    "PlannedOrder",
    "PolicySettings",
    "PolicyState",
    "RebalanceTo",
    "Revaluation",
    "RiskReport",
    "RiskSettings",
    "RiskState",
    "Scenario",
    "ScenarioResult",
    "TradingState",
    "VolState",
    "assess",
    "atm_vol_30d",
    "check",
    "decide",
    "deribit_pm_grid",
    "options_advice",
    "smooth",
    "span_grid",
    "target_leverage",
]
