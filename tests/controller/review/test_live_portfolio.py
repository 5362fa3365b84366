"""``levctl serve`` on a real two-currency ``levctl run``: the whole book and a panel per currency, each
figure equal to the log's, over HTTP and in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.review import live_data
from controller.review.live_book_plot import book_plot
from controller.review.live_data import live_state
from controller.review.live_html import fragment
from tests.controller.e2e import has_cycles, rows, wait_until
from tests.controller.review.test_live import Process, _browser_or_skip, get, launch, serve
from tests.controller.review.test_report_portfolio import two_currency_config


@pytest.fixture(scope="module")
def portfolio_run(tmp_path_factory) -> Iterator[Path]:
    """``levctl run`` with BTC and ETH on the built-in simulator, forever (until the module is done)."""
    home = tmp_path_factory.mktemp("live-portfolio")
    config = two_currency_config(home)
    # two virtual days of common history give the joint VaR (the default asks for 30)
    config.write_text(config.read_text().replace("[risk]", "[risk]\nvar_min_days = 2", 1))
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
            page.wait_for_function(
                "() => document.body.innerText.includes('of the book')", timeout=90_000
            )  # the joint VaR card, once two virtual days are in the log
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


def has_book_var(db: Path) -> bool:
    return bool(rows(db, "select id from cycles where portfolio_var_usd is not null limit 1"))


def _text(cell: str) -> str:
    return re.sub(r"<[^>]+>", "", cell).strip()


def table_rows(page: str, caption: str) -> list[list[str]]:
    """The rows of the table under ``<h2>caption</h2>`` as plain text, its header first."""
    match = re.search(rf"<h2>{re.escape(caption)}</h2><table[^>]*>(.*?)</table>", page, re.S)
    assert match, caption
    return [
        [_text(cell) for cell in re.findall(r"<t[dh]>(.*?)</t[dh]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", match.group(1), re.S)
    ]


def card(html: str, label: str) -> tuple[str, str]:
    """A card's value and the line below it."""
    match = re.search(
        rf"<div class='label'>{re.escape(label)}</div><div class='value'>(.*?)</div><div class='sub'>(.*?)</div>",
        html,
    )
    assert match, label
    return _text(match.group(1)), _text(match.group(2))


def panels(page: str) -> dict[str, tuple[int, str]]:
    """Each currency's panel: the cycle of its figures and its own HTML."""
    found = re.findall(r"<div class='leg' data-currency='(\w+)' data-n='(\d+)'>(.*?</table>)", page, re.S)
    return {currency: (int(n), body) for currency, n, body in found}


def test_each_currency_panel_and_the_book_show_the_logs_own_rows(portfolio_run):
    """Parsed from the HTML: each panel's equity is its currency's row at the cycle it names, the book's
    is the log's and the sum of the currencies' at its cycle; decisions and orders name their currency."""
    wait_until(lambda: has_book_var(portfolio_run), 90, "a cycle with the joint VaR")
    server, url = serve(portfolio_run)
    try:
        status, page, _ = get(url)
    finally:
        server.stop()
    assert status == 200
    shown = panels(page)
    assert list(shown) == ["BTC", "ETH"]
    for currency, (n, body) in shown.items():
        (row,) = rows(portfolio_run, "select * from cycles where currency = ? and n = ?", currency, n)
        assert card(body, "equity (USD)")[0] == format(row["equity_usd"], ",.0f")
        assert card(body, "leverage L")[0] == format(row["signed_leverage"], "+.2f")
        assert f"{currency}-PERPETUAL" in body and ("ETH" if currency == "BTC" else "BTC") + "-" not in body
    book_n = int(re.search(r"<h2>The whole book \(cycle (\d+)\)</h2>", page).group(1))
    each = rows(
        portfolio_run, "select currency, equity_usd, portfolio_equity_usd from cycles where n = ?", book_n
    )
    value, below = card(page, "book equity (USD)")
    assert value == format(each[0]["portfolio_equity_usd"], ",.0f")
    assert abs(float(value.replace(",", "")) - sum(r["equity_usd"] for r in each)) <= 1
    assert below == " · ".join(f"{r['currency']} {r['equity_usd']:,.0f}" for r in each)
    var, var_below = card(page, "joint 1-day VaR (USD)")
    assert var != "—" and "of the book" in var_below and "ES " in var_below
    decisions = table_rows(page, "Last decisions")
    assert decisions[0][:2] == ["cycle", "currency"]
    for n, currency, *_, leverage, _target, _reason in decisions[1:]:
        (row,) = rows(portfolio_run, "select * from cycles where currency = ? and n = ?", currency, int(n))
        assert leverage == format(row["signed_leverage"], "+.2f")
    assert {r[1] for r in decisions[1:]} == {"BTC", "ETH"}
    orders = table_rows(page, "Orders")
    assert orders[0][:2] == ["cycle", "currency"] and len(orders) > 1
    assert all(o[5].startswith(o[1] + "-") for o in orders[1:])  # the instrument is its currency's


def _snapshot(db: Path, copy: Path) -> Path:
    with sqlite3.connect(db, timeout=10) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return copy


def test_the_recent_window_is_cycles_of_every_currency(portfolio_run, tmp_path, monkeypatch):
    db = _snapshot(portfolio_run, tmp_path / "copy.db")
    monkeypatch.setattr(live_data, "RECENT_CYCLES", 3)
    recent = live_state(db)["recent"]
    assert len(recent) == 6 and [c["currency"] for c in recent].count("BTC") == 3
    assert book_plot(recent, ["BTC", "ETH"], {"id": 1, "mode": "paper"})[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_cycle_half_written_keeps_both_panels_and_the_whole_book(portfolio_run, tmp_path):
    """Each currency commits its own row: between BTC's and ETH's the page stays a portfolio's, its book
    at the last cycle both wrote; a frozen currency is flagged, its reason escaped."""
    db = _snapshot(portfolio_run, tmp_path / "half.db")
    with sqlite3.connect(db) as conn:
        n = conn.execute("select max(n) from cycles").fetchone()[0]
        eth = "select id from cycles where n = ? and currency = 'ETH'"
        conn.execute(f"delete from positions where cycle_id in ({eth})", [n])
        conn.execute(f"update orders set cycle_id = null where cycle_id in ({eth})", [n])
        conn.execute("delete from cycles where n = ? and currency = 'ETH'", [n])
        conn.execute(
            "update cycles set portfolio = json_set(portfolio, '$.goals.ETH.frozen', 'stale <snapshot>') "
            "where n = ?",
            [n - 1],
        )
    state = live_state(db)
    assert state["currencies"] == ["BTC", "ETH"]
    assert state["legs"]["BTC"]["cycle"]["n"] == n and state["legs"]["ETH"]["cycle"]["n"] == n - 1
    book = state["book"]
    assert book["n"] == n - 1 and list(book["currency_equity_usd"]) == ["BTC", "ETH"]
    assert sum(book["currency_equity_usd"].values()) == pytest.approx(book["equity_usd"], rel=1e-9)
    assert book["goals"]["ETH"]["frozen"] == "stale <snapshot>"
    html = fragment(state)
    assert list(panels(html)) == ["BTC", "ETH"] and "book of BTC + ETH" in html
    assert "frozen: stale &lt;snapshot&gt;" in html and "<snapshot>" not in html
