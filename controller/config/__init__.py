"""Configuration: TOML validated once at load (pydantic), then frozen settings objects.

Unknown keys are rejected; every error names the key path and the rule broken, e.g.
``config/x.toml: policy.band: must be > 0 and < 1 (got 1.5)``.  Secrets never live here: API key
and secret come only from ``LEVCTL_API_KEY`` / ``LEVCTL_API_SECRET``.  Every key is documented in
``docs/configuration.md``.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_serializer, model_validator

from controller.config.base import ConfigError, NonNegative, Positive
from controller.config.base import Strict as _Strict
from controller.config.calibrate import CALIBRABLE, NOT_CALIBRABLE, CalibrateConfig
from controller.risk import AdviceLimits, GuardSettings, Mode, PolicySettings, RebalanceTo, RiskSettings
from controller.risk.sigma import SigmaSettings
from controller.venues import CcxtVenueSettings, SimSettings, StartingPosition

EMBEDDED_DEFAULT = "embedded default"
T = TypeVar("T")


class RunConfig(_Strict):
    mode: Literal["dry-run", "paper", "testnet", "live"] = "dry-run"
    interval_s: NonNegative = 60.0
    cycles: Annotated[int, Field(ge=0)] = 0  # 0: until stopped
    label_prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,7}$")] = "lv"
    reconcile: Literal["cancel", "adopt"] = "cancel"
    kill_switch_file: str = "logs/KILL"
    db: str = "logs/levctl.db"
    log_file: str = "logs/levctl.log"
    allow_live: bool = False
    order_timeout_s: Positive = 20.0
    order_valid_s: Annotated[float, Field(gt=0, le=300)] = 15.0  # Deribit valid_until: now + this
    valid_margin_s: NonNegative = 5.0  # past valid_until by this, "not found" is proof of never placed
    account_lock_dir: str = "~/.cache/levctl/locks"  # one sending bot per account, across logs
    retry_attempts: Annotated[int, Field(ge=1, le=10)] = 4
    retry_base_delay_s: NonNegative = 0.5
    retry_max_delay_s: NonNegative = 8.0


class SimBookEntry(_Strict):
    kind: Literal["option", "perpetual"]
    size: float  # coin for options, USD for the perpetual
    right: Literal["call", "put"] | None = None
    expiry_days: Positive | None = None  # the listed expiry nearest this many days ahead
    moneyness: Positive | None = None  # strike / index, the nearest listed strike

    @model_validator(mode="after")
    def _option_fields(self) -> SimBookEntry:
        if self.kind == "option" and None in (self.right, self.expiry_days, self.moneyness):
            raise ValueError("an option entry needs right, expiry_days and moneyness")
        return self


class SimVenueConfig(_Strict):
    seed: int = 7
    start: datetime = datetime(2026, 1, 2, 8, tzinfo=UTC)
    step_s: Positive = 3600.0  # virtual time that passes per cycle
    initial_balance: Positive = 10.0
    initial_balances: dict[Literal["BTC", "ETH"], Positive] = Field(default_factory=dict)  # per currency
    replay: str | None = None
    use_vol_index: bool = False  # also read the simulated DVOL (the replayed one in a replay)
    weeklies: Annotated[int, Field(ge=0, le=8)] = 3  # listed expiries of each kind; 0/0/0: perpetual only
    monthlies: Annotated[int, Field(ge=0, le=12)] = 3
    quarterlies: Annotated[int, Field(ge=0, le=8)] = 3
    strikes_each_side: Annotated[int, Field(ge=1, le=40)] = 14
    margin_model: Literal["standard", "portfolio"] = "standard"  # the paper account's margin setting
    book: tuple[SimBookEntry, ...] = ()


class CcxtConfig(_Strict):
    exchange: Literal["deribit"] = "deribit"
    sandbox: bool = True
    rest_url: str | None = None
    timeout_ms: Annotated[int, Field(ge=100, le=120_000)] = 10_000
    use_vol_index: bool = False


Currency = Literal["BTC", "ETH"]


class VenueConfig(_Strict):
    kind: Literal["sim", "ccxt"] = "sim"
    currency: Currency = "BTC"
    currencies: tuple[Currency, ...] = ()  # several: one portfolio, each hedged on its own perpetual
    hedge_instrument: str = ""  # default: the currency's perpetual, e.g. ETH-PERPETUAL
    sim: SimVenueConfig = SimVenueConfig()
    ccxt: CcxtConfig = CcxtConfig()

    @model_validator(mode="after")
    def _hedge_in_currency(self) -> VenueConfig:
        if self.currencies:
            if len(set(self.currencies)) != len(self.currencies):
                raise ValueError(f"currencies must be distinct, got {list(self.currencies)}")
            if self.hedge_instrument not in (
                "",
                f"{self.currencies[0]}-PERPETUAL",
            ):  # the latter: a dump read back
                raise ValueError(
                    "with several currencies each is hedged on its own perpetual: leave hedge_instrument out"
                )
            object.__setattr__(self, "currency", self.currencies[0])
        if not self.hedge_instrument:
            object.__setattr__(self, "hedge_instrument", f"{self.currency}-PERPETUAL")
        elif not self.hedge_instrument.startswith(f"{self.currency}-"):
            raise ValueError(
                f"hedge_instrument {self.hedge_instrument} is not a {self.currency} instrument "
                f"(venue.currency = {self.currency!r})"
            )
        return self


class RiskConfig(_Strict):
    sigma_sources: tuple[Literal["chain", "index", "constant"], ...] = ("chain", "index")
    sigma_constant: Positive | None = None
    reference_vol: Positive = 0.60
    ewma_half_life_s: NonNegative = 6 * 3600.0
    target_tenor_days: Positive = 30.0
    min_expiry_days: NonNegative = 1.0
    stress_k: Positive = 2.0
    stress_horizon_days: Positive = 1.0
    span_price_range: Annotated[float, Field(gt=0, lt=1)] = 0.25
    span_vol_range: Annotated[float, Field(ge=0, lt=1)] = 0.25
    span_extreme_cover: Annotated[float, Field(ge=0, le=1)] = 0.35
    greeks_abs_tol: NonNegative = 0.02
    greeks_rel_tol: NonNegative = 0.05
    sigma_estimator: Literal["implied", "realised", "implied_vrp", "blend"] = "realised"
    realised_half_life_days: Positive = 3.0
    realised_min_history_days: NonNegative = 2.0
    vrp_half_life_days: Positive = 90.0
    vrp_min_history_days: NonNegative = 30.0
    blend_weight: Annotated[float, Field(ge=0, le=1)] = 0.5
    var_level: Annotated[float, Field(gt=0.5, lt=1)] = 0.99
    var_window_days: Annotated[int, Field(ge=10, le=3650)] = 365
    var_min_days: Annotated[int, Field(ge=1)] = 30

    def settings(self) -> RiskSettings:
        values = self.model_dump()
        sigma = SigmaSettings(
            estimator=values.pop("sigma_estimator"),
            ewma_half_life_s=values.pop("ewma_half_life_s"),
            **{key: values.pop(key) for key in SIGMA_KEYS},
        )
        return RiskSettings(**{**values, "sigma_sources": tuple(self.sigma_sources), "sigma": sigma})


SIGMA_KEYS = (
    "realised_half_life_days",
    "realised_min_history_days",
    "vrp_half_life_days",
    "vrp_min_history_days",
    "blend_weight",
)


class PolicyConfig(_Strict):
    mode: Mode = Mode.LONG
    base_leverage: NonNegative = 1.0
    min_leverage: NonNegative = 0.0
    max_leverage: NonNegative = 3.0
    band: Annotated[float, Field(gt=0, lt=1)] = 0.2
    rebalance_to: RebalanceTo = RebalanceTo.TARGET
    neutral_band_usd: Positive = 10_000.0
    min_order_usd: NonNegative = 100.0
    max_order_usd: Positive = 1_000_000.0
    hard_cap: Positive = 5.0
    cooldown_s: NonNegative = 0.0


class GuardConfig(_Strict):
    max_data_age_s: Positive = 120.0
    max_price_jump: Positive = 0.15
    max_margin_ratio: Positive = 0.5
    max_drawdown: Annotated[float, Field(gt=0, le=1)] = 0.35
    hold_on_greeks_divergence: bool = True
    max_var_fraction: Positive | None = None  # 1-day VaR above this share of equity: REDUCING
    max_clock_skew_s: Positive = 5.0  # local vs exchange clock: a warning beyond it
    max_future_s: NonNegative = 2.0  # figures stamped later than the exchange's clock by more: HOLD


class AdviceConfig(_Strict):
    max_dollar_gamma_usd: Positive | None = None
    max_vega_usd: Positive | None = None
    max_worst_loss_fraction: Positive | None = None


class ReplayConfig(_Strict):
    book: Literal["perpetual", "short-straddle"] = "perpetual"
    straddle_fraction: Annotated[float, Field(gt=0, le=5)] = 0.5  # coin per leg, × equity in coin
    straddle_tenor_days: Positive = 30.0
    baseline_band: Annotated[float, Field(gt=0, lt=1)] = 0.15  # the fixed-leverage baseline's band


NOTIFY_KINDS = (
    "halt",
    "stopped",
    "reducing",
    "guard",
    "failed",
    "fill",
    "liquidation",
    "var",
    "breach",
    "book",
)


class NotifyConfig(_Strict):
    urls: tuple[str, ...] = ()  # apprise URLs; LEVCTL_NOTIFY_URLS adds more (and keeps tokens out of files)
    level: Literal["info", "warning", "critical"] = "warning"
    events: tuple[Literal[NOTIFY_KINDS], ...] = NOTIFY_KINDS  # type: ignore[valid-type]
    failed_in_a_row: Annotated[int, Field(ge=1)] = 3
    liquidation_distance: Annotated[float, Field(gt=0, lt=1)] | None = 0.10
    var_fraction: Positive | None = None  # VaR above this share of equity; default guards.max_var_fraction
    timeout_s: Positive = 10.0

    @field_serializer("urls", when_used="json")
    def _schemes_only(self, urls: tuple[str, ...]) -> list[str]:
        """The decision log keeps the config: a URL's token or password must not reach it."""
        return [url.split("://", 1)[0] + "://…" for url in urls]


class PortfolioConfig(_Strict):
    """How a book in several currencies (``venue.currencies``) is held to one volatility target."""

    split: Literal["proportional", "equal_risk"] = "proportional"
    correlation_half_life_days: Positive = 7.0
    correlation_min_history_days: NonNegative = 2.0  # before it, every pair counts as ρ = 1
    max_order_usd: dict[Currency, Positive] = Field(default_factory=dict)  # per currency, else policy's
    eth_beta: Positive = 1.5  # the named stress "ETH moves 1.5× BTC"
    cascade_amplification: NonNegative = 0.5  # the liquidation move extended by this share again
    cascade_vol_shift: Annotated[float, Field(ge=-1)] = 0.5  # implied vols × (1 + this) at the cascade
    max_var_fraction: Positive | None = None  # the book's joint VaR above this share of equity: REDUCING
    min_cascade_distance: Annotated[float, Field(gt=0, lt=1)] | None = None  # a nearer cascade: REDUCING


class FileConfig(_Strict):
    run: RunConfig = RunConfig()
    venue: VenueConfig = VenueConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    risk: RiskConfig = RiskConfig()
    policy: PolicyConfig = PolicyConfig()
    guards: GuardConfig = GuardConfig()
    advice: AdviceConfig = AdviceConfig()
    replay: ReplayConfig = ReplayConfig()
    notify: NotifyConfig = NotifyConfig()
    calibrate: CalibrateConfig = CalibrateConfig()


@dataclass(frozen=True)
class Config:
    """A validated configuration and the frozen settings built from it."""

    source: str
    file: FileConfig
    risk: RiskSettings
    policy: PolicySettings
    guards: GuardSettings
    advice: AdviceLimits

    @property
    def run(self) -> RunConfig:
        return self.file.run

    @property
    def venue(self) -> VenueConfig:
        return self.file.venue

    @property
    def currencies(self) -> tuple[str, ...]:
        return self.venue.currencies or (self.venue.currency,)

    def for_currency(self, currency: str) -> Config:
        """The configuration of one currency of a portfolio: its own perpetual, its order cap."""
        raw = self.file.model_dump(mode="json")
        raw["venue"].update(currency=currency, currencies=[], hedge_instrument="")
        if currency in self.venue.sim.initial_balances:
            raw["venue"]["sim"]["initial_balance"] = self.venue.sim.initial_balances[currency]
        if currency in self.file.portfolio.max_order_usd:
            raw["policy"]["max_order_usd"] = self.file.portfolio.max_order_usd[currency]
        return build_config(raw, source=f"{self.source} [{currency}]")

    def sim_settings(self) -> SimSettings:
        s = self.venue.sim
        return SimSettings(
            currency=self.venue.currency,
            hedge_instrument=self.venue.hedge_instrument,
            seed=s.seed,
            start=s.start,
            initial_balance=s.initial_balance,
            replay=s.replay,
            use_vol_index=s.use_vol_index,
            weeklies=s.weeklies,
            monthlies=s.monthlies,
            quarterlies=s.quarterlies,
            strikes_each_side=s.strikes_each_side,
            margin_model=s.margin_model,
        )

    def starting_book(self) -> tuple[StartingPosition, ...]:
        return tuple(StartingPosition(**entry.model_dump()) for entry in self.venue.sim.book)

    def ccxt_settings(self) -> CcxtVenueSettings:
        c = self.venue.ccxt
        return CcxtVenueSettings(
            exchange=c.exchange,
            currency=self.venue.currency,
            hedge_instrument=self.venue.hedge_instrument,
            sandbox=c.sandbox,
            rest_url=c.rest_url,
            timeout_ms=c.timeout_ms,
            use_vol_index=c.use_vol_index,
        )

    def as_json(self) -> str:
        """The whole configuration (it holds no secrets), canonical: the decision log keeps it."""
        return json.dumps(self.file.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.as_json().encode()).hexdigest()


def load_config(path: Path | None = None, *, embedded: str = "default.toml") -> Config:
    """Read, validate and build the configuration; ``None`` loads an embedded one (the default)."""
    if path is None:
        text = resources.files("controller").joinpath(embedded).read_text(encoding="utf-8")
        source = EMBEDDED_DEFAULT if embedded == "default.toml" else f"embedded {embedded}"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        source = str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return build_config(raw, source=source)


def build_config(raw: dict[str, Any], *, source: str = "<dict>") -> Config:
    try:
        file = FileConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc)) from None
    _check_space(source, file)
    return Config(
        source=source,
        file=file,
        risk=_section(
            source,
            "risk",
            file.risk.settings,
        ),
        policy=_section(
            source,
            "policy",
            lambda: PolicySettings(hedge_instrument=file.venue.hedge_instrument, **file.policy.model_dump()),
        ),
        guards=GuardSettings(**file.guards.model_dump()),
        advice=AdviceLimits(**file.advice.model_dump()),
    )


def with_values(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw configuration with ``{"policy.band": 0.2, …}`` set (dotted key paths)."""
    out = json.loads(json.dumps(raw, default=str))
    for key, value in values.items():
        *sections, leaf = key.split(".")
        table = out
        for section in sections:
            table = table.setdefault(section, {})
        table[leaf] = value
    return out


def _check_space(source: str, file: FileConfig) -> None:
    """Every searched parameter is calibrable, and each end of its range (each choice) is valid."""
    raw = file.model_dump(mode="json")
    for name, spec in file.calibrate.space.items():
        where = f"{source}: calibrate.space.{name}"
        if name in NOT_CALIBRABLE:
            raise ConfigError(f"{where}: not calibrable: {NOT_CALIBRABLE[name]}")
        if name not in CALIBRABLE:
            raise ConfigError(f"{where}: unknown parameter (calibrable: {', '.join(CALIBRABLE)})")
        for value in spec.choices if spec.choices is not None else (spec.low, spec.high):
            try:
                FileConfig.model_validate(with_values(raw, {name: value}))
            except ValidationError as exc:
                rule = exc.errors()[0]["msg"].lower()
                raise ConfigError(f"{where}: {value!r} is not a valid {name}: {rule}") from None


def _section(source: str, name: str, build: Callable[[], T]) -> T:
    """Build one settings object; its cross-field rules (e.g. max_leverage <= hard_cap) name the section."""
    try:
        return build()
    except ValueError as exc:
        raise ConfigError(f"{source}: {name}: {exc}") from None


def _describe(source: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(f"{source}: {path}: unknown key")
        else:
            got = error.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            message = error["msg"].removeprefix("Value error, ")  # our validators' words, as written
            lines.append(f"{source}: {path}: {message[:1].lower()}{message[1:]}{shown}")
    return "\n".join(lines)
