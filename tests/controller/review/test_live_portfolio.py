"""``levctl serve`` on a real two-currency ``levctl run``: the whole book and a panel per currency, each
figure equal to the log's, over HTTP and in headless Chromium."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.e2e import has_cycles, rows, wait_until
from tests.controller.review.test_live import Process, _browser_or_skip, get, launch, serve
from tests.controller.review.test_report_portfolio import two_currency_config


@pytest.fixture(scope="module")
def portfolio_run(tmp_path_factory) -> Iterator[Path]:
    """``levctl run`` with BTC and ETH on the built-in simulator, forever (until the module is done)."""
    home = tmp_path_factory.mktemp("live-portfolio")
    config = two_currency_config(home)
    bot = Process(["run", "--config", str(config), "--cycles", "0", "--db", "pf.db"], home)
    db = home / "pf.db"
    try:
        wait_until(lambda: has_cycles(db, 6), 60, "three cycles of both currencies")
        yield db
    finally:
        output = bot.stop()
        assert "Traceback" not in output, output


def test_the_page_shows_the_book_and_each_currency_as_the_log_has_them(portfolio_run):
    server, url = serve(portfolio_run)
    try:
        status, state_text, _ = get(url + "api/state")
        assert status == 200 and "correlation_state" not in state_text  # the controller's, not a figure
        state = json.loads(state_text)
        assert state["currencies"] == ["BTC", "ETH"]
        book = state["book"]
        for currency, leg in state["legs"].items():
            (row,) = rows(
                portfolio_run, "select equity_usd, n from cycles where id = ?", leg["figures"]["id"]
            )
            (latest,) = rows(
                portfolio_run,
                "select max(id) as id from cycles where currency = ? and n <= ?",
                currency,
                row["n"],
            )
            assert leg["figures"]["id"] == latest["id"] and leg["figures"]["currency"] == currency
            assert leg["figures"]["equity_usd"] == row["equity_usd"]
            assert all(p["instrument"].startswith(currency) for p in leg["positions"]) and leg["positions"]
        (logged,) = rows(
            portfolio_run,
            "select max(portfolio_equity_usd) as book, sum(equity_usd) as summed from cycles where n = ?",
            book["n"],
        )
        assert book["equity_usd"] == pytest.approx(logged["book"], rel=1e-12)
        assert logged["summed"] == pytest.approx(logged["book"], rel=1e-9)
        assert book["equity_usd"] == pytest.approx(sum(book["currency_equity_usd"].values()), rel=1e-9)
        assert book["vol_share"] == pytest.approx(book["book_vol_usd"] / book["equity_usd"], rel=1e-12)
        assert book["target_vol"] == 0.6 and set(book["goals"]) == {"BTC", "ETH"}
        assert {d["currency"] for d in state["decisions"]} == {"BTC", "ETH"}
        status, page, _ = get(url)
        for words in ("The whole book", "book equity (USD)", "σ_book / E", "risk leverage", "portfolio leverage",
                      "joint 1-day VaR (USD)", "liquidation cascade", "Each currency&#x27;s share of the target",
                      "BTC-PERPETUAL", "ETH-PERPETUAL", "book of BTC + ETH"):  # fmt: skip
            assert words in page, words
        with urllib.request.urlopen(url + "plot.png", timeout=30) as reply:
            assert reply.headers["content-type"] == "image/png" and reply.read()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.stop()


@pytest.mark.slow
def test_in_a_real_browser_the_book_and_both_currencies_are_shown_and_advance(portfolio_run, tmp_path):
    sync_api = _browser_or_skip()
    server, url = serve(portfolio_run)
    shot = Path(os.environ.get("LEVCTL_SCREENSHOT_DIR", tmp_path)) / "live-portfolio.png"
    try:
        with sync_api.sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            first = int(page.text_content("#cycle").split()[1])
            page.wait_for_function(
                f"() => parseInt(document.getElementById('cycle').dataset.n) > {first + 1}", timeout=30_000
            )
            page.wait_for_function("() => !document.getElementById('plot').hidden", timeout=30_000)
            text = page.inner_text("body")
            for words in ("The whole book", "book equity (USD)", "BTC-PERPETUAL", "ETH-PERPETUAL",
                          "Each currency's share of the target", "Last decisions"):  # fmt: skip
                assert words in text, words
            assert page.locator("h2.leg").count() == 2  # one panel per currency
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        server.stop()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
