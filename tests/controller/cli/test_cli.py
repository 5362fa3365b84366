"""The levctl command line: the run command on the embedded default, books, calculators, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import pricing
from controller.cli import cli
from controller.cli.sample import sample_account


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_book_prints_the_sample_book(runner):
    result = runner.invoke(cli, ["book"])
    assert result.exit_code == 0, result.output
    for name in ("BTC-25DEC26-100000-C", "BTC-PERPETUAL", "total positions", "by expiry", "collateral"):
        assert name in result.output


def test_book_json_agrees_with_the_library(runner):
    result = runner.invoke(cli, ["book", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    account = sample_account()
    book = pricing.book_greeks(
        account.positions,
        as_of=account.as_of,
        index_prices=account.index_prices,
        collateral=account.collateral,
    )
    assert payload["totals"]["delta_usd"] == pytest.approx(book.delta_usd)
    assert payload["totals"]["vega_usd"] == pytest.approx(book.vega_usd)
    btc = payload["underlyings"]["BTC"]
    assert btc["delta"] == pytest.approx(btc["positions_delta"] + btc["collateral"])
    assert len(payload["positions"]) == len(account.positions)


def test_console_script_is_installed_and_runs():
    exe = shutil.which("levctl", path=str(Path(sys.executable).parent))
    assert exe, "the levctl console script is not installed beside this interpreter"
    done = subprocess.run([exe, "book", "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["underlyings"]["BTC"]["index_price"] > 0


def test_once_prints_book_leverage_and_decision(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["once"])
    assert result.exit_code == 0, result.output
    for words in (
        "BTC-PERPETUAL",
        "total positions",
        "leverage",
        "L_stress",
        "band",
        "Decision: REBALANCE",
        "order lv-",
    ):
        assert words in result.output, words
    payload = json.loads(runner.invoke(cli, ["once", "--json", "--dry-run"]).output)
    assert payload["decision"]["action"] == "REBALANCE" and payload["mode"] == "dry-run"
    assert payload["decision"]["orders"][0]["status"] == "recommended"
    assert (
        payload["metrics"]["band_low"]
        < payload["metrics"]["target_leverage"]
        < payload["metrics"]["band_high"]
    )


def test_log_shows_cycles_orders_and_events(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(cli, ["run", "--cycles", "3"]).exit_code == 0
    table = runner.invoke(cli, ["log"])
    assert table.exit_code == 0 and "REBALANCE" in table.output and "lv-" in table.output
    data = json.loads(runner.invoke(cli, ["log", "--json", "--limit", "2"]).output)
    assert [c["n"] for c in data["cycles"]] == [2, 3] and data["runs"][0]["status"] == "finished"
    since = json.loads(runner.invoke(cli, ["log", "--json", "--since", "2026-01-02T09:30"]).output)
    assert [c["n"] for c in since["cycles"]] == [3]
    missing = runner.invoke(cli, ["log", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 1 and "no decision log" in missing.output


POSITIONS = """instrument,size,mark_price,underlying_price,mark_iv
BTC-25DEC26-90000-C,-2,0.045,92000,52.5
BTC-PERPETUAL,50000,91900,,
"""


def test_book_from_a_positions_file(runner, tmp_path):
    path = tmp_path / "book.csv"
    path.write_text(POSITIONS)
    args = [
        "book",
        "--positions",
        str(path),
        "--index",
        "BTC=91850",
        "--collateral",
        "BTC=3",
        "--as-of",
        "2026-11-21T08:00",
    ]
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    perp = payload["positions"][1]
    assert perp["delta"] == pytest.approx(50000 / 91900)
    option = payload["positions"][0]
    assert option["vega_usd"] < 0 and option["delta"] < 0
    table = runner.invoke(cli, args)
    assert table.exit_code == 0 and "BTC-25DEC26-90000-C" in table.output


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("instrument,size\nBTC-PERPETUAL,1\n", [], "missing column(s) mark_price"),
        ("instrument,size,mark_price\nBTC-PERP,1,2\n", [], ":2: column instrument"),
        (
            "instrument,size,mark_price,underlying_price,mark_iv\nBTC-25DEC26-90000-C,1,0.04,92000,0.52\n",
            [],
            "mark_iv is in percent",
        ),
        ("instrument,size,mark_price\nBTC-PERPETUAL,abc,2\n", [], "column size is not a number"),
        ("instrument,size,mark_price\nETH-PERPETUAL,10,3000\n", [], "no index price for underlying 'ETH'"),
    ],
)
def test_bad_positions_file_is_one_clear_error(runner, tmp_path, content, extra, message):
    path = tmp_path / "book.csv"
    path.write_text(content)
    result = runner.invoke(cli, ["book", "--positions", str(path), "--index", "BTC=90000", *extra])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_positions_file(runner, tmp_path):
    result = runner.invoke(cli, ["book", "--positions", str(tmp_path / "nope.csv"), "--index", "BTC=1"])
    assert result.exit_code == 1 and "cannot read positions file" in result.output


def test_bad_pairs_are_usage_errors(runner, tmp_path):
    path = tmp_path / "book.csv"
    path.write_text(POSITIONS)
    result = runner.invoke(cli, ["book", "--positions", str(path), "--index", "BTC:90000"])
    assert result.exit_code == 2 and "expected COIN=NUMBER" in result.output


def test_greeks_command_matches_the_kernel(runner):
    result = runner.invoke(
        cli,
        [
            "greeks",
            "--forward",
            "60000",
            "--strike",
            "65000",
            "--days",
            "30",
            "--vol-pct",
            "60",
            "--call",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    g = pricing.greeks(forward=60000.0, strike=65000.0, t_years=30 / 365, vol=0.6, is_call=True)
    assert payload["vega"] == pytest.approx(float(g.vega))
    assert payload["price_in_coin"] == pytest.approx(float(g.price) / 60000.0)


def test_greeks_command_rejects_bad_input(runner):
    result = runner.invoke(
        cli, ["greeks", "--forward", "60000", "--strike", "-1", "--days", "30", "--vol-pct", "60", "--put"]
    )
    assert result.exit_code == 1 and "strike" in result.output
    result = runner.invoke(cli, ["greeks", "--forward", "60000", "--strike", "1", "--vol-pct", "60", "--put"])
    assert result.exit_code == 2 and "--days or --expiry" in result.output


def test_iv_command_round_trip_and_reasons(runner):
    # Deribit BTC-22MAY20-9250-P at 2020-05-14 05:41:36 UTC: mark 0.04010621 BTC, mark_iv 76.87 %
    ok = runner.invoke(
        cli,
        [
            "iv",
            "--forward",
            "9352.58",
            "--strike",
            "9250",
            "--expiry",
            "2020-05-22",
            "--as-of",
            "2020-05-14T05:41:36",
            "--put",
            "--price-coin",
            "0.04010621",
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["vol"] == pytest.approx(0.7687, abs=0.002)
    below = runner.invoke(
        cli, ["iv", "--forward", "100", "--strike", "90", "--days", "10", "--call", "--price", "9"]
    )
    assert below.exit_code == 1 and "BELOW_INTRINSIC" in below.output
