"""A two-currency cycle through the real ccxt client against the two-currency HTTP simulator: five
REST calls a currency, whatever the number of positions (the budget of one currency, once each)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import schedule

from controller.app import RunOptions, build_controller
from controller.config import build_config
from controller.sim import SimConfig
from controller.sim.multi import MultiSim, currency_config
from controller.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimServer
from tests.controller.conftest import Admin

BUDGET = {  # one currency's snapshot: account, positions, the chain's marks, the perpetual, funding
    "private/get_account_summary",
    "private/get_positions",
    "public/get_book_summary_by_currency",
    "public/ticker",
    "public/get_funding_rate_value",
}


def _currency(request: dict) -> str:
    params = request["params"]
    return params.get("currency") or params["instrument_name"].split("-")[0]


def test_each_currency_costs_its_own_five_calls_whatever_it_holds(tmp_path: Path):
    multi = MultiSim.correlated(
        [currency_config(c, base=SimConfig(seed=11, initial_balance=50.0)) for c in ("BTC", "ETH")]
    )
    with SimServer(multi, port=0, speed=0.0) as server:
        admin = Admin(server.url)
        config = build_config(
            {
                "run": {
                    "mode": "dry-run",
                    "interval_s": 0,
                    "db": str(tmp_path / "p.db"),
                    "log_file": str(tmp_path / "p.log"),
                },
                "venue": {"kind": "ccxt", "currencies": ["BTC", "ETH"], "ccxt": {"rest_url": server.url}},
            }
        )
        env = {"LEVCTL_API_KEY": DEFAULT_API_KEY, "LEVCTL_API_SECRET": DEFAULT_API_SECRET}
        controller = build_controller(config, RunOptions(dry_run=True), env=env)
        controller.start()
        calls = []
        try:
            for held in (0, 60):
                eth = multi.engine("ETH")
                for i, option in enumerate(
                    sorted(eth.instruments(kind="option"), key=lambda x: x.name)[:held]
                ):
                    eth.place_order(name=option.name, direction="buy", amount=1, label=f"held-{i}")
                admin.clear_requests()
                controller.run(cycles=1, scheduler=schedule.Scheduler(), should_stop=lambda: False)
                calls.append(
                    Counter((r["method"], _currency(r)) for r in admin.get("/_sim/requests")["requests"])
                )
        finally:
            controller.finish("finished", "test")
            controller.close()
    expected = Counter({(method, c): 1 for method in BUDGET for c in ("BTC", "ETH")})
    assert calls == [expected, expected]
    with sqlite3.connect(tmp_path / "p.db") as db:
        held = db.execute(
            "select count(*) from positions where currency = 'ETH' and cycle_id = "
            "(select max(id) from cycles where currency = 'ETH')"
        )
        assert held.fetchone()[0] == 60  # every option held, read in the same five calls
