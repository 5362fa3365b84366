"""`levctl report` on a run of two currencies: the whole book (one point per cycle) beside each
currency, figures that agree with SQL, and each currency's breaches as episodes of its own."""

from __future__ import annotations

import itertools
import json
import math
import os
import sqlite3
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.review.breaches import BreachTracker
from controller.review.report import NUMBERS, CycleColumns, book_columns

ROOT = Path(__file__).resolve().parents[3]


def two_currency_config(home: Path) -> Path:
    """The embedded default with ETH beside BTC on the built-in two-currency simulator."""
    text = (ROOT / "controller" / "default.toml").read_text()
    text = text.replace("[venue]\n", '[venue]\ncurrencies = ["BTC", "ETH"]\n', 1).replace(
        'currency = "BTC"\n', "", 1
    )
    text = text.replace(
        "initial_balance = 10.0", "initial_balance = 10.0\ninitial_balances = { ETH = 150.0 }", 1
    )
    path = home / "portfolio.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def portfolio_log(tmp_path_factory):
    home = tmp_path_factory.mktemp("portfolio-report")
    config = two_currency_config(home)
    previous = os.getcwd()
    os.chdir(home)
    try:
        result = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "24", "--db", "pf.db"])
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(previous)
    return home / "pf.db"


def sql(db: Path, query: str, *args):
    with sqlite3.connect(db) as conn:
        return conn.execute(query, args).fetchall()


def test_a_portfolio_run_is_summarised_as_its_book_then_each_currency_and_agrees_with_sql(portfolio_log):
    result = CliRunner().invoke(cli, ["report", "--db", str(portfolio_log), "--json"])
    assert result.exit_code == 0, result.output
    book, btc, eth = json.loads(result.output)["runs"]
    assert [s["part"] for s in (book, btc, eth)] == ["book", "BTC", "ETH"]
    ticks = sql(
        portfolio_log,
        "select n, ts, sum(equity_usd), max(portfolio_equity_usd) from cycles group by n order by n",
    )
    assert book["cycles"] == len(ticks) == 24
    summed = [t[2] for t in ticks]
    assert [t[3] for t in ticks] == pytest.approx(summed, rel=1e-12)  # the book's equity is the currencies'
    assert book["equity_start_usd"] == pytest.approx(summed[0]) and book["equity_end_usd"] == pytest.approx(
        summed[-1]
    )
    times = [datetime.fromisoformat(t[1]).timestamp() for t in ticks]
    r2 = sum(math.log(b / a) ** 2 for a, b in itertools.pairwise(summed))
    assert book["realised_vol_equity"] == pytest.approx(
        math.sqrt(r2 / ((times[-1] - times[0]) / (365 * 86400)))
    )
    target = sql(portfolio_log, "select json_extract(portfolio, '$.target_vol') from cycles limit 1")[0][0]
    assert book["target_vol_equity"] == pytest.approx(target)
    nearest = sql(portfolio_log, "select min(cascade_distance) from cycles")[0][0]
    assert book["nearest_cascade"] == pytest.approx(nearest)
    for summary in (btc, eth):
        currency = summary["part"]
        rows = sql(portfolio_log, "select equity_usd from cycles where currency = ? order by id", currency)
        assert summary["cycles"] == len(rows) and summary["equity_start_usd"] == pytest.approx(rows[0][0])
        filled = sql(
            portfolio_log, "select count(*) from orders where status = 'filled' and currency = ?", currency
        )
        assert summary["orders_filled"] == filled[0][0]
    assert book["orders_filled"] == btc["orders_filled"] + eth["orders_filled"] > 0
    assert book["turnover_usd"] == pytest.approx(btc["turnover_usd"] + eth["turnover_usd"])
    assert book["breaches"] == btc["breaches"] + eth["breaches"] >= 1  # each currency's own episodes


def test_the_page_plots_the_book_and_each_currency_without_mixing_their_rows(portfolio_log, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["report", "--db", str(portfolio_log), "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.glob("*.png")}
    assert {"run-1-book-equity.png", "run-1-book-risk.png", "run-1-book-var.png"} <= names
    for currency in ("BTC", "ETH"):
        assert {f"run-1-{currency}-{k}.png" for k in ("leverage", "equity", "volatility")} <= names
    page = (out / "report.html").read_text()
    assert "the whole book" in page and "run 1 BTC paper" in page and "run 1 ETH paper" in page


def _columns(n: list[int], currency: list[int], good: list[bool], book_equity: list[float]) -> CycleColumns:
    size = len(n)
    numbers = {k: np.full(size, np.nan) for k in NUMBERS}
    numbers["portfolio_equity_usd"] = np.array(book_equity)
    numbers["equity_usd"] = np.arange(size, dtype=float) + 1.0
    return CycleColumns(
        np.arange(size) + 1, np.ones(size, np.int64), np.array(n), np.array(n, dtype=float) * 3600.0,
        np.array(good), np.array([False, True, False, False, False, False]), np.zeros(size, bool),
        np.array(currency), numbers, ("BTC", "ETH"),
    )  # fmt: skip


def test_the_book_has_one_row_per_cycle_and_a_failed_currency_does_not_lose_the_cycle():
    rows = _columns([1, 1, 2, 2, 3, 3], [0, 1, 0, 1, 0, 1], [True, True, True, False, False, False],
                    [100.0, 100.0, 90.0, np.nan, np.nan, np.nan])  # fmt: skip
    book = book_columns(rows)
    assert book.n.tolist() == [1, 2, 3] and book.currency.tolist() == [-1, -1, -1]
    assert book["equity_usd"][:2].tolist() == [100.0, 90.0] and np.isnan(book["equity_usd"][2])
    assert book.good.tolist() == [True, True, False]  # cycle 2: ETH failed, BTC's row carries the book
    assert book.rebalance.tolist() == [True, False, False]  # ETH's rebalance in cycle 1 is the book's
    assert rows.currencies_held() == ("BTC", "ETH") and rows.of_currency("ETH").n.tolist() == [1, 2, 3]


def test_each_currency_has_its_own_breach_episodes():
    tracker = BreachTracker()
    vega = '["vega +2,600 USD per vol point exceeds the limit 2,000: reduce"]'
    for n in range(1, 5):  # BTC in breach throughout; ETH clean, then in breach of its own
        tracker.observe(1, n, f"t{n}", json.loads(vega), currency="BTC")
        tracker.observe(1, n, f"t{n}", json.loads(vega) if n >= 3 else [], currency="ETH")
    btc, eth = tracker.episodes
    assert (btc.currency, btc.first_n, btc.last_n, btc.cycles, btc.ongoing) == ("BTC", 1, 4, 4, True)
    assert (eth.currency, eth.first_n, eth.last_n, eth.cycles) == ("ETH", 3, 4, 2)
