"""``levctl sim …``: run the simulated exchange's Deribit-compatible HTTP face."""

from __future__ import annotations

import signal
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click

from controller.cli.errors import user_errors
from controller.sim import SimConfig, SimExchange
from controller.sim.listing import ListingParams
from controller.sim.market import ReplayPath, load_replay_csv
from controller.sim.multi import DEFAULT_RHO, MultiSim, currency_config
from controller.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimServer


@click.group()
def sim() -> None:
    """The built-in simulated exchange over HTTP, for ccxt and testnet-mode runs (sim serve)."""


@sim.command()
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="TCP port on 127.0.0.1."
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Seed of the stochastic-volatility market."
)
@click.option(
    "--replay", "replay_file", type=click.Path(path_type=Path), help="Replay a market-history CSV instead."
)
@click.option("--api-key", envvar="LEVCTL_SIM_API_KEY", default=DEFAULT_API_KEY, show_default=True)
@click.option(
    "--api-secret",
    envvar="LEVCTL_SIM_API_SECRET",
    default=DEFAULT_API_SECRET,
    show_default=False,
    help=f"Secret the server accepts [default: {DEFAULT_API_SECRET}].",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Virtual seconds per wall second; 0 moves time only through POST /_sim/advance.",
)
@click.option(
    "--currency",
    "currencies",
    type=click.Choice(["BTC", "ETH"]),
    multiple=True,
    default=["BTC"],
    show_default=True,
    help="The account's currency: its perpetual, futures and options, with Deribit's specs. "
    "Repeat it (--currency BTC --currency ETH) for one account per currency, markets correlated.",
)
@click.option(
    "--rho",
    type=click.FloatRange(-1.0, 1.0),
    default=DEFAULT_RHO,
    show_default=True,
    help="With several currencies: the correlation of their markets' shocks.",
)
@click.option(
    "--balance",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Starting equity of the account (of each currency's), in its currency.",
)
@click.option(
    "--margin-model",
    type=click.Choice(["standard", "portfolio"]),
    default="standard",
    show_default=True,
    help="The account's margin: Deribit's standard margin, or its portfolio margin (scenario grid).",
)
@click.option("--start", "start_time", metavar="ISO-TIME", help="Virtual start time (UTC) [default: now].")
def serve(
    port: int,
    seed: int,
    replay_file: Path | None,
    api_key: str,
    api_secret: str,
    speed: float,
    currencies: tuple[str, ...],
    rho: float,
    balance: float,
    margin_model: str,
    start_time: str | None,
) -> None:
    """Serve the Deribit v2 API subset ccxt uses on http://127.0.0.1:PORT (Ctrl-C stops it)."""
    # by default the virtual clock starts now, so a controller's data-age guard sees fresh data
    start = datetime.now(UTC).replace(microsecond=0)  # to the second: the clock-skew guard stays quiet
    if start_time:
        try:
            start = datetime.fromisoformat(start_time).replace(tzinfo=UTC)
        except ValueError:
            raise click.BadParameter(f"not an ISO time: {start_time!r}", param_hint="--start") from None
    currencies = tuple(dict.fromkeys(currencies))  # in the order given, once each
    config = SimConfig(seed=seed, start=start, initial_balance=balance, margin_model=margin_model)
    exchange: SimExchange | MultiSim
    if len(currencies) > 1:
        if replay_file is not None:
            raise click.UsageError("--replay replays one currency's history: give one --currency with it")
        exchange = MultiSim.correlated([currency_config(c, base=config) for c in currencies], rho=rho)
        source = f"{' and '.join(currencies)} markets correlated {rho:g}, seed {seed}"
    else:
        config = replace(config, listing=ListingParams.for_currency(currencies[0]))
        exchange, source = _single(config, replay_file)
    try:
        server = SimServer(exchange, port=port, api_key=api_key, api_secret=api_secret, speed=speed)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    click.echo(f"levctl sim: {source}; virtual time {exchange.now:%Y-%m-%d %H:%M} UTC at {speed:g}x")
    click.echo(
        f"levctl sim: Deribit API on {server.url}/api/v2 (API key {api_key}); admin on {server.url}/_sim"
    )
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("levctl sim: stopped")
    finally:
        server.httpd.server_close()


def _single(config: SimConfig, replay_file: Path | None) -> tuple[SimExchange, str]:
    """One currency's engine, on the stochastic market or replaying ``replay_file``; what it runs."""
    if replay_file is None:
        return SimExchange(config), f"stochastic-volatility market, seed {config.seed}"
    with user_errors():
        data = load_replay_csv(replay_file)
    engine = SimExchange(config, path=ReplayPath(data))
    return engine, f"replay of {replay_file} ({len(data.times_ms):,} rows, {len(data.gaps)} gaps)"


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # a service manager's stop is a clean stop, like Ctrl-C
