"""The ``[calibrate]`` section: what ``levctl calibrate`` may search, its folds and stress windows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from controller.config.base import NonNegative, Positive
from controller.config.base import Strict as _Strict

# What a calibration may search, and what it may not: L_base and σ_ref are the user's risk appetite
# (inputs), never outputs.  A parameter that only matters for some σ̂ estimators is sampled only then.
CALIBRABLE = (
    "risk.sigma_estimator",
    "risk.realised_half_life_days",
    "risk.blend_weight",
    "risk.vrp_half_life_days",
    "risk.ewma_half_life_s",
    "policy.band",
    "policy.rebalance_to",
    "policy.min_leverage",
    "policy.max_leverage",
    "policy.cooldown_s",
    "policy.min_order_usd",
)
NOT_CALIBRABLE = {
    "policy.base_leverage": "L_base is the user's risk appetite, an input",
    "risk.reference_vol": "σ_ref sets the volatility target, an input",
}


class ParamRange(_Strict):
    """One searched parameter: ``choices``, or ``low``..``high`` (``log`` scale, ``step`` grid)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: Positive | None = None
    choices: tuple[str | float, ...] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ParamRange:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("give either a non-empty list of choices or low and high, not both")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("needs low < high (or a list of choices)")
        elif self.log and self.low <= 0:
            raise ValueError("a log scale needs low > 0")
        elif self.log and self.step is not None:
            raise ValueError("give log or step, not both")
        return self


class StressWindow(_Strict):
    name: str
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> StressWindow:
        for field in ("start", "end"):
            if getattr(self, field).tzinfo is None:
                object.__setattr__(self, field, getattr(self, field).replace(tzinfo=UTC))
        if not self.start < self.end:
            raise ValueError(f"end ({self.end:%Y-%m-%d}) must be after start ({self.start:%Y-%m-%d})")
        return self


DEFAULT_SPACE = {
    "risk.sigma_estimator": ParamRange(choices=("implied", "realised", "implied_vrp", "blend")),
    "risk.realised_half_life_days": ParamRange(low=1.0, high=14.0, log=True),
    "risk.blend_weight": ParamRange(low=0.0, high=1.0),
    "risk.vrp_half_life_days": ParamRange(low=30.0, high=180.0, log=True),
    "risk.ewma_half_life_s": ParamRange(low=3600.0, high=4 * 86400.0, log=True),
    "policy.band": ParamRange(low=0.05, high=0.40),
    "policy.rebalance_to": ParamRange(choices=("target", "edge")),
    "policy.min_leverage": ParamRange(low=0.0, high=1.0),
    "policy.max_leverage": ParamRange(low=2.0, high=4.0),
}
DEFAULT_STRESS = (
    StressWindow(name="May 2021 crash", start=datetime(2021, 5, 10), end=datetime(2021, 6, 1)),
    StressWindow(name="June 2022 (Luna, 3AC, Celsius)", start=datetime(2022, 6, 1), end=datetime(2022, 7, 1)),
    StressWindow(name="Nov 2022 (FTX)", start=datetime(2022, 11, 1), end=datetime(2022, 12, 1)),
)


class CalibrateConfig(_Strict):
    trials: Annotated[int, Field(ge=1, le=100_000)] = 40  # per study: each fold's and the final one
    folds: Annotated[int, Field(ge=0, le=50)] = 4  # 0: no walk-forward, one study on all the data
    scheme: Literal["expanding", "rolling"] = "expanding"
    train_days: Positive | None = None  # rolling: the training window (default: one fold's length)
    start: datetime | None = None  # the span of the history calibrated on (default: all of it)
    end: datetime | None = None
    seed: int = 7
    trades_budget_per_year: NonNegative = 40.0
    trade_penalty: NonNegative = 0.002  # added per trade a year above the budget (0.002: 0.2 vol points)
    drawdown_limit: Annotated[float, Field(gt=0, le=1)] = 1.0  # 1: no limit
    drawdown_penalty: NonNegative = 1.0  # × the drawdown beyond the limit
    stress: tuple[StressWindow, ...] = DEFAULT_STRESS
    space: dict[str, ParamRange] = DEFAULT_SPACE

    @model_validator(mode="before")
    @classmethod
    def _flatten_space(cls, raw: Any) -> Any:
        """``[calibrate.space] policy.band = {…}`` (nested) and ``"policy.band" = {…}`` mean the same."""
        if isinstance(raw, dict) and isinstance(raw.get("space"), dict):
            raw = {**raw, "space": _flatten(raw["space"])}
        return raw


def _flatten(space: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in space.items():
        name = f"{prefix}{key}"
        leaf = not isinstance(value, dict) or set(value) & set(ParamRange.model_fields)
        out.update({name: value} if leaf else _flatten(value, f"{name}."))
    return out
