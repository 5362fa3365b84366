"""``levctl replay --data BTC.csv --data ETH.csv`` on the real histories: the portfolio controller beside
one controller per currency, on their common timestamps (2021-03 → 2022-06)."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

from controller.cli import cli
from tests.conftest import require_shared_file


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
