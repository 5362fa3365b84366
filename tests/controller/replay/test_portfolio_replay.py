"""``levctl replay --data BTC.csv --data ETH.csv`` on the real histories: the portfolio controller beside
one controller per currency, on their common timestamps (2021-03 → 2022-06)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from tests.conftest import require_shared_file

ROOT = Path(__file__).resolve().parents[3]


def test_the_portfolio_holds_the_whole_book_nearer_its_target_than_one_controller_per_currency(tmp_path):
    btc = require_shared_file("btc_2h_dvol_funding.csv")
    eth = require_shared_file("eth_2h_dvol_2021-2022.csv")
    db = tmp_path / "r.db"
    result = CliRunner().invoke(
        cli,
        ["replay", "--data", str(btc), "--data", f"ETH={eth}", "--db", str(db), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{") :])
    assert out["currencies"] == ["BTC", "ETH"]
    portfolio, independent = out["books"]
    assert (portfolio["role"], independent["role"]) == ("portfolio", "independent")
    assert portfolio["status"] == independent["status"] == "completed"
    assert portfolio["cycles"] == independent["cycles"] == 5227  # every common 2-hour row
    assert portfolio["equity_start_usd"] == independent["equity_start_usd"]  # the same two accounts
    target = portfolio["target_vol"]
    miss = {b["role"]: abs(b["figures"]["vol"] - target) for b in (portfolio, independent)}
    # one controller per currency holds each currency at the target, and their sum below it (ρ < 1)
    assert independent["figures"]["vol"] < target and miss["portfolio"] < miss["independent"]
    assert portfolio["figures"]["tracking_error"] < 0.12
    with sqlite3.connect(db) as conn:
        (run,) = portfolio["run_ids"]
        rows = conn.execute(
            "select currency, count(*), count(book_vol_usd), min(portfolio_equity_usd > equity_usd) "
            "from cycles where run_id = ? group by currency",
            [run],
        ).fetchall()
        assert rows == [("BTC", 5227, 5227, 1), ("ETH", 5227, 5227, 1)]
        traded = {r[0] for r in conn.execute("select distinct currency from orders where run_id = ?", [run])}
        assert traded == {"BTC", "ETH"}  # each hedged on its own perpetual
    # the report compares the portfolio run as its book (one point per cycle), as the replay did
    report = CliRunner().invoke(cli, ["report", "--db", str(db), "--json"], catch_exceptions=False)
    row = next(r for r in json.loads(report.output)["replays"] if r["role"] == "portfolio")
    for name, key in (("vol", "vol"), ("tracking error", "tracking_error"), ("max drawdown", "max_drawdown")):
        assert row[name] == pytest.approx(portfolio["figures"][key], rel=1e-9)
    assert row["trades"] == portfolio["trades"]


def test_equal_risk_holds_the_target_with_btc_at_its_own_cap(tmp_path):
    """Equal risk asks BTC (the calmer) for more exposure than 3x its own equity: BTC is held at its cap
    and ETH carries the rest, so the book's goal stays exactly the target and its vol lands on it."""
    btc = require_shared_file("btc_2h_dvol_funding.csv")
    eth = require_shared_file("eth_2h_dvol_2021-2022.csv")
    config = tmp_path / "equal-risk.toml"
    reference = (ROOT / "controller" / "replay-perpetual.toml").read_text()
    config.write_text(reference + '\n[portfolio]\nsplit = "equal_risk"\n')
    db = tmp_path / "e.db"
    args = [
        "replay",
        "--config",
        str(config),
        "--data",
        str(btc),
        "--data",
        f"ETH={eth}",
        "--db",
        str(db),
        "--json",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    portfolio, _ = json.loads(result.output[result.output.index("{") :])["books"]
    assert abs(portfolio["figures"]["vol"] - portfolio["target_vol"]) < 0.02
    assert portfolio["figures"]["tracking_error"] < 0.12
    with sqlite3.connect(db) as conn:
        (run,) = portfolio["run_ids"]
        capped, on_target, at_cap = conn.execute(
            "select count(*), sum(abs(json_extract(portfolio, '$.goal_book_vol_usd') "
            "- json_extract(portfolio, '$.target_vol') * portfolio_equity_usd) < 1e-9 * portfolio_equity_usd), "
            "sum(abs(target_leverage - 3.0) < 1e-9) from cycles where run_id = ? and currency = 'BTC' "
            "and portfolio like '%BTC: its goal passes its own leverage cap%'",
            [run],
        ).fetchone()
        split = conn.execute(
            "select distinct json_extract(portfolio, '$.split') from cycles where run_id = ?", [run]
        )
        assert split.fetchall() == [("equal_risk",)]
    assert capped > 1000 and on_target == capped and at_cap == capped
