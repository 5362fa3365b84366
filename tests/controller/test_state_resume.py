"""A restart resumes the controller's state from the decision log: σ̂'s history, peak equity, the latch."""

from __future__ import annotations

import json
import re
import signal
import time
from datetime import datetime

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.records import restore_carried_state
from controller.risk.realised import ewma_vol, observe
from tests.controller.e2e import Server, bot_env, has_cycles, rows, start_bot, write_testnet_config

DAY_S = 86400.0


def test_kill_minus_9_then_restart_continues_sigmas_history_exactly(tmp_path):
    server = Server()  # the exchange's clock moves only when the test moves it
    try:
        config = write_testnet_config(
            tmp_path / "resume.toml",
            server,
            run={"interval_s": 0.05},
            risk={
                "sigma_estimator": "realised",
                "realised_half_life_days": 1,
                "realised_min_history_days": 0.05,
            },
        )
        db = tmp_path / "run.db"
        bot = start_bot(config)
        try:
            factor = 1.01
            deadline = time.monotonic() + 60
            while not has_cycles(db, 12) and time.monotonic() < deadline:
                server.post("/_sim/advance", {"seconds": 1800})
                server.post("/_sim/move", {"price_factor": factor})
                factor = 1 / factor  # the index goes up and down: realised variance builds up
                time.sleep(0.1)
        finally:
            bot.send_signal(signal.SIGKILL)
            bot.communicate(timeout=10)
        saved = rows(db, "select id, carried_state from cycles where run_id = 1 order by id desc limit 1")[0]
        server.post("/_sim/advance", {"seconds": 1800})
        server.post("/_sim/move", {"price_factor": 1.02})
        result = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "1"], env=bot_env())
        assert result.exit_code == 0, result.output
        first = rows(db, "select * from cycles where run_id = 2 order by n limit 1")[0]
        _, before, policy_before = restore_carried_state(saved["carried_state"])
        _, after, policy_after = restore_carried_state(first["carried_state"])
        expected = observe(
            before.realised,
            price=first["index_price"],
            at=datetime.fromisoformat(first["venue_time"]),
            half_life_s=DAY_S,
        )
        assert after.realised.sum_r2 == pytest.approx(expected.sum_r2, rel=1e-12, abs=0)
        assert after.realised.sum_dt == pytest.approx(expected.sum_dt, rel=1e-12)
        assert first["sigma_realised"] == pytest.approx(ewma_vol(expected, min_history_days=0.05), rel=1e-12)
        assert first["sigma_source"] == "realised"  # no cold start: the history was resumed
        assert policy_after.peak_equity_usd >= policy_before.peak_equity_usd
        runs = rows(db, "select status from runs order by id")
        assert [r["status"] for r in runs] == ["crashed", "finished"]
        resumed = rows(db, "select message from events where kind = 'state_resumed'")
        assert resumed and f"cycle {saved['id']}" in resumed[0]["message"]
    finally:
        server.stop()


def test_the_drawdown_halt_survives_a_restart_unless_started_fresh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "latch.toml"
    from pathlib import Path

    default = (Path(__file__).resolve().parents[2] / "config" / "default.toml").read_text()
    config.write_text(re.sub(r"max_drawdown = [0-9.]+", "max_drawdown = 0.0001", default))
    first = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "12"])
    assert first.exit_code == 0, first.output
    db = tmp_path / "logs" / "levctl.db"
    latched = rows(db, "select action, reason from cycles where run_id = 1 and action = 'HALT'")
    assert latched and "drawdown" in latched[-1]["reason"]
    again = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "1"])
    assert again.exit_code == 0, again.output
    (resumed,) = rows(db, "select action, reason from cycles where run_id = 2")
    assert resumed["action"] == "HALT" and resumed["reason"].startswith("halted: drawdown")
    carried = json.loads(rows(db, "select carried_state from cycles where run_id = 2")[0]["carried_state"])
    assert carried["policy"]["halted_reason"].startswith("drawdown")
    fresh = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "1", "--fresh-state"])
    assert fresh.exit_code == 0, fresh.output
    (cold,) = rows(db, "select action from cycles where run_id = 3")
    assert cold["action"] != "HALT"
