"""Configuration: every shipped file validates; bad ones fail with the key path and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.app import RunOptions, effective_mode
from controller.cli import cli
from controller.config import ConfigError, build_config, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_configs_are_valid():
    default = load_config(None)
    assert default.run.mode == "paper" and default.venue.kind == "sim" and len(default.venue.sim.book) == 4
    for path in sorted((ROOT / "config").glob("*.toml")):
        config = load_config(path)
        assert config.sha256 and config.as_json()
    assert (
        load_config(ROOT / "config" / "deribit-testnet.toml").run.mode == "dry-run"
    )  # dry-run until you say so


@pytest.mark.parametrize("name", ["default.toml", "replay-perpetual.toml", "replay-straddle.toml"])
def test_the_packaged_configs_are_the_ones_in_config(name):
    packaged = (ROOT / "controller" / name).read_text()
    assert packaged == (ROOT / "config" / name).read_text()
    load_config(ROOT / "config" / name)  # and they validate


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"policy": {"band": "wide"}}, "policy.band: input should be a valid number"),
        ({"policy": {"bandd": 0.2}}, "policy.bandd: unknown key"),
        ({"policy": {"band": -0.1}}, "policy.band: input should be greater than 0 (got -0.1)"),
        ({"policy": {"band": 1.5}}, "policy.band: input should be less than 1"),
        ({"run": {"mode": "yolo"}}, "run.mode: input should be 'dry-run', 'paper', 'testnet' or 'live'"),
        ({"venue": {"ccxt": {"api_secret": "x"}}}, "venue.ccxt.api_secret: unknown key"),
        (
            {"venue": {"sim": {"book": [{"kind": "option", "size": 1}]}}},
            "venue.sim.book.0: an option entry needs",
        ),
        ({"policy": {"max_leverage": 6, "hard_cap": 5}}, "policy: max_leverage must not exceed hard_cap"),
        (
            {"risk": {"sigma_sources": ["constant"]}},
            "risk: the 'constant' sigma source needs a positive sigma_constant",
        ),
        ({"extra": 1}, "extra: unknown key"),
    ],
)
def test_bad_configs_name_the_key(raw, message):
    with pytest.raises(ConfigError) as caught:
        build_config(raw, source="bad.toml")
    assert message in str(caught.value) and str(caught.value).startswith("bad.toml: ")


def test_live_needs_both_the_flag_and_allow_live():
    live = build_config(
        {"run": {"mode": "live"}, "venue": {"kind": "ccxt", "ccxt": {"sandbox": False}}}, source="l.toml"
    )
    with pytest.raises(
        ConfigError, match=r"without both --live on the command line and run\.allow_live = true"
    ):
        effective_mode(live, RunOptions(live=True))
    allowed = build_config(
        {"run": {"mode": "live", "allow_live": True}, "venue": {"kind": "ccxt", "ccxt": {"sandbox": False}}},
        source="l.toml",
    )
    with pytest.raises(ConfigError, match="without both --live"):
        effective_mode(allowed, RunOptions(live=False))
    assert effective_mode(allowed, RunOptions(live=True)) == "live"
    assert effective_mode(allowed, RunOptions(live=True, dry_run=True)) == "dry-run"
    with pytest.raises(ConfigError, match="--live was given but"):
        effective_mode(load_config(None), RunOptions(live=True))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"run": {"mode": "paper"}, "venue": {"kind": "ccxt"}}, "'paper' needs venue.kind = 'sim'"),
        ({"run": {"mode": "testnet"}}, "needs venue.kind = 'ccxt'"),
        (
            {"run": {"mode": "testnet"}, "venue": {"kind": "ccxt", "ccxt": {"sandbox": False}}},
            "needs venue.ccxt.sandbox = true",
        ),
    ],
)
def test_mode_and_venue_must_agree(raw, message):
    with pytest.raises(ConfigError, match=message):
        effective_mode(build_config(raw, source="m.toml"), RunOptions())


def test_cli_config_check(tmp_path):
    good = CliRunner().invoke(cli, ["config", "check", str(ROOT / "config" / "local-testnet.toml")])
    assert good.exit_code == 0 and "ok — mode testnet" in good.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\nband = -0.5\nunknown = 1\n")
    result = CliRunner().invoke(cli, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert (
        "policy.band: input should be greater than 0" in result.output
        and "policy.unknown: unknown key" in result.output
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("[policy\n")
    assert "not valid TOML" in CliRunner().invoke(cli, ["config", "check", str(broken)]).output


def test_run_refuses_live_without_the_flag(tmp_path):
    cfg = tmp_path / "live.toml"
    cfg.write_text(
        '[run]\nmode = "live"\nallow_live = true\n[venue]\nkind = "ccxt"\n[venue.ccxt]\nsandbox = false\n'
    )
    result = CliRunner().invoke(
        cli, ["run", "--config", str(cfg), "--cycles", "1", "--db", str(tmp_path / "x.db")]
    )
    assert result.exit_code == 1 and "without both --live" in result.output


def test_several_currencies_each_on_its_own_perpetual_with_its_own_cap():
    config = build_config(
        {
            "venue": {"currencies": ["BTC", "ETH"], "sim": {"initial_balances": {"ETH": 30.0}}},
            "portfolio": {"max_order_usd": {"ETH": 250_000}},
        }
    )
    assert config.currencies == ("BTC", "ETH")
    btc, eth = (config.for_currency(c) for c in config.currencies)
    assert (btc.venue.currency, btc.venue.hedge_instrument, btc.policy.hedge_instrument) == (
        "BTC",
        "BTC-PERPETUAL",
        "BTC-PERPETUAL",
    )
    assert (eth.venue.hedge_instrument, eth.policy.max_order_usd) == ("ETH-PERPETUAL", 250_000)
    assert btc.policy.max_order_usd == config.policy.max_order_usd
    assert (btc.venue.sim.initial_balance, eth.venue.sim.initial_balance) == (10.0, 30.0)
    assert build_config({}).currencies == ("BTC",)


@pytest.mark.parametrize(
    "venue, message",
    [
        ({"currencies": ["BTC", "BTC"]}, "venue: currencies must be distinct"),
        ({"currencies": ["BTC", "ETH"], "hedge_instrument": "BTC-29MAR24"}, "leave hedge_instrument out"),
        ({"currencies": ["BTC", "SOL"]}, "venue.currencies.1: input should be 'BTC' or 'ETH'"),
    ],
)
def test_bad_currencies_are_named(venue, message):
    with pytest.raises(ConfigError, match=message):
        build_config({"venue": venue})
