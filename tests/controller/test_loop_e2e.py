"""The controller end to end, no internet: the embedded default, and real ccxt against `levctl sim serve`.

Covers issue 5's list: the default run, testnet and dry-run against the HTTP simulator, faults mid
run, kill -9 and restart, secrets, SIGTERM, and bad credentials.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.journal import integrity_ok
from tests.controller.e2e import EXE, KEY, SECRET, Server, has_cycles, rows, write_testnet_config


@pytest.fixture
def server():
    running = Server()
    running.client.create_order(
        "BTC/USD:BTC", "market", "sell", 400_000, params={"label": "setup-1"}
    )  # off target
    running.post("/_sim/requests/clear")
    yield running
    output = running.stop()
    assert SECRET not in output


@pytest.fixture
def testnet_config(tmp_path, server, monkeypatch):
    monkeypatch.setenv("LEVCTL_API_KEY", KEY)
    monkeypatch.setenv("LEVCTL_API_SECRET", SECRET)
    return write_testnet_config(tmp_path / "testnet.toml", server)


def leverage_back_in_band(db: Path, run_id: int = 1) -> None:
    cycles = rows(db, "select * from cycles where run_id = ? order by n", run_id)
    rebalanced = [c for c in cycles if c["action"] in ("REBALANCE", "REDUCE")]
    assert rebalanced, "the controller never traded"
    for c in rebalanced:
        later = [d for d in cycles if d["n"] > c["n"] and d["action"] != "ERROR"]
        if later:
            nxt = later[0]
            assert nxt["band_low"] - 2e-3 <= nxt["signed_leverage"] <= nxt["band_high"] + 2e-3, (c["n"], nxt)


# ------------------------------------------------------------------ 1. the embedded default


def test_embedded_default_runs_30_cycles_and_rebalances_into_the_band(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--cycles", "30"])
    assert result.exit_code == 0, result.output
    assert "30 cycles done" in result.output
    db = tmp_path / "logs" / "levctl.db"
    cycles = rows(db, "select * from cycles order by n")
    assert [c["n"] for c in cycles] == list(range(1, 31))
    assert all(c["action"] in ("HOLD", "REBALANCE", "REDUCE") for c in cycles)
    leverage_back_in_band(db)
    orders = rows(db, "select * from orders")
    assert orders and all(o["status"] == "filled" and o["label"].startswith("lv-") for o in orders)
    assert len({o["label"] for o in orders}) == len(orders)
    assert rows(db, "select count(*) as n from positions")[0]["n"] >= 30 * 4
    run = rows(db, "select * from runs")[0]
    assert run["mode"] == "paper" and run["status"] == "finished" and len(run["config_sha256"]) == 64
    assert (tmp_path / "logs" / "levctl.log").read_text().count("cycle ") >= 30


def test_dry_run_on_the_embedded_default_only_recommends(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "--cycles", "3", "--dry-run"])
    assert result.exit_code == 0, result.output
    db = tmp_path / "logs" / "levctl.db"
    orders = rows(db, "select * from orders")
    assert orders and {o["status"] for o in orders} == {"recommended"}
    assert rows(db, "select mode from runs")[0]["mode"] == "dry-run"


# ------------------------------------------------------------------ 2. testnet through real ccxt


def test_testnet_mode_sends_fills_and_records_labelled_orders(server, testnet_config, tmp_path):
    result = CliRunner().invoke(cli, ["run", "--config", str(testnet_config), "--cycles", "3"])
    assert result.exit_code == 0, result.output
    db = tmp_path / "run.db"
    orders = rows(db, "select * from orders")
    assert orders and all(o["status"] == "filled" and o["exchange_order_id"] for o in orders)
    labels = server.get("/_sim/state")["order_labels"]
    assert {o["label"] for o in orders} <= set(labels)
    assert "private/buy" in server.methods()
    leverage_back_in_band(db)
    assert rows(db, "select mode, venue from runs")[0] == {"mode": "testnet", "venue": "deribit-testnet"}


# ------------------------------------------------------------------ 3. dry-run against the same server


def test_dry_run_sends_nothing_to_the_exchange(server, testnet_config, tmp_path):
    result = CliRunner().invoke(cli, ["run", "--config", str(testnet_config), "--cycles", "3", "--dry-run"])
    assert result.exit_code == 0, result.output
    orders = rows(tmp_path / "run.db", "select * from orders")
    assert orders and {o["status"] for o in orders} == {"recommended"}
    methods = server.methods()
    assert "private/get_positions" in methods
    assert not {"private/buy", "private/sell", "private/cancel"} & set(methods)


# ------------------------------------------------------------------ 4. faults mid-run


def test_faults_mid_run_are_events_and_never_duplicate_an_order(server, testnet_config, tmp_path):
    for fault in (
        {"method": "private/get_positions", "kind": "http", "status": 503},
        {"method": "private/get_account_summary", "kind": "rate_limit"},
        {"method": "public/ticker", "kind": "delay", "seconds": 1.5},
        {"method": "private/buy", "kind": "error", "code": 10009},  # the first order: rejected for margin
        {"method": "private/buy", "kind": "delay", "seconds": 1.5},  # the second: times out, executes late
    ):
        server.post("/_sim/faults", fault)
    result = CliRunner().invoke(cli, ["run", "--config", str(testnet_config), "--cycles", "5"])
    assert result.exit_code == 0, result.output
    db = tmp_path / "run.db"
    assert len(rows(db, "select * from cycles")) == 5
    kinds = Counter(e["kind"] for e in rows(db, "select kind from events"))
    assert kinds["venue_retry"] >= 3  # 503, rate limit, timeout
    assert kinds["order_rejected"] == 1 and kinds["order_unknown"] == 1
    labels = server.get("/_sim/state")["order_labels"]
    assert max(Counter(labels).values()) == 1, labels  # no label twice in the exchange's orders
    orders = rows(db, "select * from orders order by id")
    assert orders[0]["status"] == "rejected"
    # the order that timed out and executed late was found by its label, not resent
    late = orders[1]
    history = rows(
        db, "select from_status, to_status, detail from order_events where order_id = ?", late["id"]
    )
    steps = [(h["from_status"], h["to_status"]) for h in history]
    assert steps[:2] == [(None, "sending"), ("sending", "unknown")]
    assert steps[-1] == ("unknown", "filled")
    assert set(steps[2:-1]) <= {("unknown", "unknown")}  # lookups that did not find it yet
    assert late["resolved_by"] == "label" and late["label"] in labels
    # while it was in flight the controller held
    held = rows(db, "select reason from cycles where reason like '%in flight%'")
    assert held


def test_a_failing_cycle_is_recorded_and_the_loop_goes_on(server, testnet_config, tmp_path):
    # an exchange error that is neither temporary nor about credentials: that cycle fails, the next runs
    server.post("/_sim/faults", {"method": "private/get_positions", "kind": "error", "code": 10001})
    result = CliRunner().invoke(cli, ["run", "--config", str(testnet_config), "--cycles", "3"])
    assert result.exit_code == 0, result.output
    cycles = rows(tmp_path / "run.db", "select n, action, reason from cycles order by n")
    assert cycles[0]["action"] == "ERROR" and "10001" in cycles[0]["reason"]
    assert all(c["action"] != "ERROR" for c in cycles[1:]) and len(cycles) == 3
    assert (
        rows(tmp_path / "run.db", "select count(*) as n from events where kind = 'cycle_failed'")[0]["n"] == 1
    )


def test_reconcile_can_adopt_orders_of_an_earlier_run(server, testnet_config, tmp_path):
    mark = server.client.fetch_ticker("BTC/USD:BTC")["markPrice"]
    stray = server.client.create_order(
        "BTC/USD:BTC", "limit", "buy", 10, round(mark * 0.5), params={"label": "lv-old-3-0"}
    )
    testnet_config.write_text(testnet_config.read_text().replace("[run]\n", '[run]\nreconcile = "adopt"\n'))
    result = CliRunner().invoke(cli, ["run", "--config", str(testnet_config), "--cycles", "1"])
    assert result.exit_code == 0, result.output
    assert server.client.fetch_order(stray["id"])["status"] == "open"
    events = rows(tmp_path / "run.db", "select message from events where kind = 'reconcile'")
    assert any("adopted 1 open order" in e["message"] and "lv-old-3-0" in e["message"] for e in events)


# ------------------------------------------------------------------ 5. kill -9 and restart


def test_kill_minus_9_mid_cycle_then_restart(server, testnet_config, tmp_path):
    env = {**os.environ, "LEVCTL_API_KEY": KEY, "LEVCTL_API_SECRET": SECRET}
    config = testnet_config.read_text().replace("interval_s = 0.3", "interval_s = 0")
    testnet_config.write_text(config)
    proc = subprocess.Popen(
        [EXE, "run", "--config", str(testnet_config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = tmp_path / "run.db"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if has_cycles(db, 3):
                break
            time.sleep(0.1)
        time.sleep(0.15)  # somewhere inside a cycle
    finally:  # never leave the bot running, whatever happened above
        proc.kill()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert integrity_ok(db)
    before = rows(db, "select * from cycles order by id")
    assert len(before) >= 3 and all(c["equity_usd"] > 0 for c in before)
    # every committed cycle is whole: its positions are there (one transaction per cycle)
    assert all(
        rows(db, "select count(*) as n from positions where cycle_id = ?", c["id"])[0]["n"] >= 1
        for c in before
    )
    # an order left open on the exchange with our prefix, as a crash could leave one
    mark = server.client.fetch_ticker("BTC/USD:BTC")["markPrice"]
    stray = server.client.create_order(
        "BTC/USD:BTC", "limit", "buy", 10, round(mark * 0.5), params={"label": "lv-9zz-1-0"}
    )
    restart = CliRunner().invoke(cli, ["run", "--config", str(testnet_config), "--cycles", "2"], env=env)
    assert restart.exit_code == 0, restart.output
    assert integrity_ok(db)
    assert rows(db, "select * from cycles where id <= ?", before[-1]["id"]) == before  # earlier cycles intact
    assert server.client.fetch_order(stray["id"])["status"] == "canceled"
    messages = [e["message"] for e in rows(db, "select message from events where kind = 'reconcile'")]
    assert any("lv-9zz-1-0" in m for m in messages)
    labels = server.get("/_sim/state")["order_labels"]
    assert max(Counter(labels).values()) == 1
    assert SECRET not in out + err


# ------------------------------------------------------------------ 6. secrets


def test_the_secret_appears_nowhere(server, testnet_config, tmp_path):
    result = CliRunner().invoke(cli, ["run", "--config", str(testnet_config), "--cycles", "2"])
    once = CliRunner().invoke(cli, ["once", "--config", str(testnet_config), "--json"])
    log = CliRunner().invoke(cli, ["log", "--db", str(tmp_path / "run.db"), "--json"])
    for output in (result.output, once.output, log.output):
        assert SECRET not in output and KEY not in output
    for path in tmp_path.iterdir():
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    bad = CliRunner().invoke(
        cli,
        ["run", "--config", str(testnet_config), "--cycles", "1"],
        env={"LEVCTL_API_SECRET": "wrong-" + SECRET},
    )
    assert bad.exit_code == 3
    assert "API credentials" in bad.output and SECRET not in bad.output
    assert b"wrong-" + SECRET.encode() not in (tmp_path / "run.db").read_bytes()


# ------------------------------------------------------------------ SIGTERM and the reader


def test_sigterm_finishes_the_cycle_and_exits_zero(tmp_path):
    cfg = tmp_path / "paper.toml"
    default = (Path(__file__).resolve().parents[2] / "config" / "default.toml").read_text()
    cfg.write_text(
        default.replace("interval_s = 0.2", "interval_s = 0.05")
        .replace('db = "logs/levctl.db"', f'db = "{tmp_path / "p.db"}"')
        .replace('log_file = "logs/levctl.log"', f'log_file = "{tmp_path / "p.log"}"')
    )
    proc = subprocess.Popen(
        [EXE, "run", "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    db = tmp_path / "p.db"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not has_cycles(db):
            time.sleep(0.1)
        # a reader while the bot writes (WAL)
        from controller.review.log import recent_activity

        assert recent_activity(db, limit=5)["cycles"]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:  # never leave the bot running, whatever happened above
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    run = rows(db, "select * from runs")[0]
    assert run["status"] == "finished" and run["exit_reason"] == "stop requested"
    assert integrity_ok(db)
