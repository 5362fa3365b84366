"""Execution under faults, end to end: real `levctl run` processes, real ccxt, the simulator over HTTP.

Every test ends by comparing what the exchange holds with what the journal says
(:func:`assert_journal_matches_exchange`): no label sent twice, no fill the journal lacks, no order
left in flight, and the position the journal's fills add up to is the exchange's.  Timeouts are
scaled down (a 1 s client timeout and a 3 s delay prove what 8 s and 20 s do).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.journal import integrity_ok
from tests.controller.e2e import (
    KEY,
    SECRET,
    Server,
    assert_journal_matches_exchange,
    bot_env,
    has_cycles,
    rows,
    start_bot,
    wait_until,
    write_testnet_config,
)

START = 400_000.0  # USD of perpetual the account starts with, long or short: off the target either way


@pytest.fixture
def live_clock_server():
    """The simulator with its clock on the wall clock (speed 1), so valid_until passes in real time."""
    running = Server(speed=1)
    yield running
    assert SECRET not in running.stop()


def open_position(server: Server, signed_usd: float) -> None:
    side = "buy" if signed_usd > 0 else "sell"
    server.client.create_order("BTC/USD:BTC", "market", side, abs(signed_usd), params={"label": "setup-1"})
    server.post("/_sim/requests/clear")


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out + err


def orders(db: Path) -> list[dict]:
    return rows(db, "select * from orders order by id")


def cycles_after(db: Path, order_id: int) -> list[dict]:
    """Cycles after the one in which an order was resolved (its last transition)."""
    last = rows(db, "select max(id) as id from order_events where order_id = ?", order_id)[0]["id"]
    resolved_at = rows(db, "select ts from order_events where id = ?", last)[0]["ts"]
    return rows(db, "select * from cycles where ts > ? and action != 'ERROR' order by id", resolved_at)


# ------------------------------------------------------------------ slow acknowledgements


@pytest.mark.parametrize(("side", "vol_shift"), [("buy", -0.15), ("sell", +0.20)])
def test_a_slow_acknowledgement_never_doubles_the_hedge(live_clock_server, tmp_path, side, vol_shift):
    """The buy (or sell) is answered 3 s after a 1 s client timeout, twice, while σ̂ moves the target."""
    server = live_clock_server
    open_position(server, -START if side == "buy" else START)
    config = write_testnet_config(
        tmp_path / "slow.toml", server, venue__ccxt={"timeout_ms": 1000}, risk={"ewma_half_life_s": 0}
    )
    db = tmp_path / "run.db"
    method = f"private/{side}"
    server.fault(method=method, kind="delay", seconds=3.0)
    proc = start_bot(config)
    try:
        wait_until(lambda: has_cycles(db) and any(o["status"] == "filled" for o in orders(db)), 30, "a fill")
        first = next(o for o in orders(db) if o["status"] == "filled")
        wait_until(lambda: len(cycles_after(db, first["id"])) >= 2, 20, "cycles after the first fill")
        # the market moves: the target moves with σ̂, and the next hedge is slow too
        server.fault(method=method, kind="delay", seconds=3.0)
        server.post("/_sim/move", {"vol_shift": vol_shift})
        wait_until(lambda: sum(o["status"] == "filled" for o in orders(db)) >= 2, 30, "a second fill")
        second = [o for o in orders(db) if o["status"] == "filled"][1]
        wait_until(lambda: len(cycles_after(db, second["id"])) >= 2, 20, "cycles after the second fill")
    finally:
        code, output = stop(proc)
    assert code == 0, output
    assert_journal_matches_exchange(db, server, start=-START if side == "buy" else START)
    sent = orders(db)
    assert [o["side"] for o in sent] == [side, side]  # one hedge per target, none twice
    for order in sent:
        steps = [
            (e["from_status"], e["to_status"])
            for e in rows(db, "select * from order_events where order_id = ?", order["id"])
        ]
        assert steps[:2] == [(None, "sending"), ("sending", "unknown")] and steps[-1][1] == "filled"
        assert order["resolved_by"] == "label"
        # after it filled, leverage sits inside the band it aimed at: a doubled hedge would not
        nxt = cycles_after(db, order["id"])[0]
        assert nxt["band_low"] - 0.02 <= nxt["signed_leverage"] <= nxt["band_high"] + 0.02, nxt
    held = rows(db, "select reason from cycles where reason like '%in flight%'")
    assert len(held) >= 2  # it held while each order was unresolved
    assert integrity_ok(db)


def test_an_order_refused_after_valid_until_is_proven_never_placed_then_hedged_once(
    live_clock_server, tmp_path
):
    """The request reaches the matching engine after valid_until: refused (13888). The bot, having
    timed out, cannot know; it holds until valid_until plus the margin has passed, then hedges again."""
    server = live_clock_server
    open_position(server, -START)
    config = write_testnet_config(
        tmp_path / "late.toml",
        server,
        run={"order_valid_s": 2, "valid_margin_s": 1},
        venue__ccxt={"timeout_ms": 1000},
    )
    db = tmp_path / "run.db"
    server.fault(method="private/buy", kind="delay", seconds=4.0)
    proc = start_bot(config)
    try:
        wait_until(lambda: has_cycles(db) and any(o["status"] == "filled" for o in orders(db)), 30, "a fill")
        wait_until(lambda: has_cycles(db, 12), 20, "a few more cycles")
    finally:
        code, output = stop(proc)
    assert code == 0, output
    first, second = orders(db)[:2]
    assert first["status"] == "not_placed" and first["resolved_by"] == "valid_until"
    assert first["label"] not in server.get("/_sim/state")["order_labels"]  # the exchange never placed it
    assert second["status"] == "filled" and second["label"] != first["label"]
    assert len(orders(db)) == 2
    assert_journal_matches_exchange(db, server, start=-START)
    # it was not declared never placed before valid_until + margin (exchange time)
    proof = rows(
        db, "select detail from order_events where order_id = ? and to_status = 'not_placed'", first["id"]
    )[0]
    assert "not found at exchange time" in proof["detail"]


# ------------------------------------------------------------------ kill -9 inside the send window


KILL_TRIALS = int(os.environ.get("LEVCTL_KILL_TRIALS", "6"))  # docs/reliability.md ran 30


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_s", [round(3.0 * i / (KILL_TRIALS - 1), 2) for i in range(KILL_TRIALS)])
def test_kill_minus_9_inside_the_send_window_then_restart(live_clock_server, tmp_path, kill_after_s):
    """The exchange takes 4 s to answer the buy; the bot is killed 0–3 s after sending it, and
    restarted at once: it finds the order by its label, sends nothing twice, loses no fill."""
    server = live_clock_server
    open_position(server, -START)
    config = write_testnet_config(tmp_path / "kill.toml", server, venue__ccxt={"timeout_ms": 10_000})
    db = tmp_path / "run.db"
    server.fault(method="private/buy", kind="delay", seconds=4.0)
    proc = start_bot(config)
    try:
        wait_until(lambda: server.sent_labels(), 30, "the buy to reach the exchange")
        time.sleep(kill_after_s + random.Random(int(kill_after_s * 10)).uniform(0, 0.05))
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert integrity_ok(db)
    intent = orders(db)
    assert len(intent) == 1 and intent[0]["status"] == "sending"  # written ahead, outcome unknown
    shown = CliRunner().invoke(cli, ["log", "--db", str(db)])
    assert "orders in flight" in shown.output and intent[0]["label"] in shown.output
    restart = start_bot(config, "--cycles", "25")
    out, err = restart.communicate(timeout=90)
    assert restart.returncode == 0, out + err
    assert_journal_matches_exchange(db, server, start=-START)
    runs = rows(db, "select id, status from runs order by id")
    assert runs[0]["status"] == "crashed" and runs[-1]["status"] == "finished"
    first = orders(db)[0]
    # found by its label, or by its fills if it executed between the two lookups
    assert first["status"] == "filled" and first["resolved_by"] in ("label", "trades")
    at_start = rows(db, "select message from events where kind = 'order_in_flight_at_start'")
    assert at_start and first["label"] in at_start[0]["message"]


# ------------------------------------------------------------------ unreadable replies


@pytest.mark.parametrize(
    ("fault", "start", "errors"),
    [
        ({"method": "private/buy", "kind": "truncate"}, -START, 0),
        ({"method": "private/sell", "kind": "truncate"}, START, 0),
        ({"method": "private/buy", "kind": "drop"}, -START, 0),
        ({"method": "private/get_positions", "kind": "truncate"}, -START, 1),
        ({"method": "private/get_account_summary", "kind": "truncate"}, -START, 1),
        (
            {"method": "private/get_positions", "kind": "rewrite", "path": "result.0.size", "value": "NaN"},
            -START,
            1,
        ),
        (
            {"method": "private/get_positions", "kind": "rewrite", "path": "result.0.size", "value": None},
            -START,
            1,
        ),
        (
            {
                "method": "private/get_positions",
                "kind": "rewrite",
                "path": "result.0.mark_price",
                "value": None,
            },
            -START,
            1,
        ),
    ],
    ids=[
        "buy-truncated",
        "sell-truncated",
        "buy-dropped",
        "positions-truncated",
        "account-truncated",
        "positions-nan",
        "positions-null-size",
        "positions-null-mark",
    ],
)
def test_an_unreadable_reply_costs_one_cycle_at_most_and_loses_nothing(tmp_path, fault, start, errors):
    server = Server(speed=1)
    try:
        open_position(server, start)
        config = write_testnet_config(tmp_path / "bad.toml", server)
        server.fault(**fault)
        result = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "8"], env=bot_env())
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        db = tmp_path / "run.db"
        failed = rows(db, "select reason from cycles where action = 'ERROR'")
        assert len(failed) == errors, failed
        if errors:
            assert "could not be read" in failed[0]["reason"] or "not a number" in failed[0]["reason"]
        assert_journal_matches_exchange(db, server, start=start)
        assert rows(db, "select count(*) as n from orders where status = 'filled'")[0]["n"] >= 1
    finally:
        server.stop()


# ------------------------------------------------------------------ states that repetition cannot fix


def test_an_auth_failure_on_an_order_send_halts_with_exit_status_3_and_a_restart_resumes(tmp_path):
    server = Server()
    try:
        open_position(server, -START)
        config = write_testnet_config(tmp_path / "auth.toml", server)
        server.fault(method="private/buy", kind="error", code=13009)
        halted = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "5"], env=bot_env())
        assert halted.exit_code == 3, halted.output
        assert "halted" in halted.output and "API credentials" in halted.output
        assert SECRET not in halted.output and KEY not in halted.output
        db = tmp_path / "run.db"
        run = rows(db, "select status, exit_reason from runs")[0]
        assert run["status"] == "halted" and "credentials" in run["exit_reason"]
        assert [o["status"] for o in orders(db)] == ["rejected"]
        assert rows(db, "select count(*) as n from cycles")[0]["n"] == 1  # no second cycle after the halt
        log = CliRunner().invoke(cli, ["log", "--db", str(db)])
        assert "run 1 HALTED" in log.output and "credentials" in log.output
        resumed = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "3"], env=bot_env())
        assert resumed.exit_code == 0, resumed.output
        assert_journal_matches_exchange(db, server, start=-START)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (
            {"method": "private/get_account_summary", "kind": "rewrite", "path": "result.equity", "value": 0},
            "equity is 0",
        ),
        (
            {
                "method": "private/get_account_summary",
                "kind": "rewrite",
                "path": "result.equity",
                "value": -1.5,
            },
            "equity is -1.5",
        ),
        (
            {
                "method": "private/get_positions",
                "kind": "rewrite",
                "path": "result.0.instrument_name",
                "value": "BTC-FS-27SEP24_PERP",
            },
            "cannot price",
        ),
    ],
    ids=["equity-zero", "equity-negative", "unknown-instrument"],
)
def test_an_account_the_controller_cannot_handle_halts_instead_of_looping(tmp_path, fault, words):
    server = Server()
    try:
        open_position(server, -START)
        config = write_testnet_config(tmp_path / "state.toml", server)
        server.fault(**fault)
        result = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "5"], env=bot_env())
        assert result.exit_code == 3, result.output
        assert words in result.output and "Traceback" not in result.output
        db = tmp_path / "run.db"
        assert rows(db, "select state, action from cycles") == [{"state": "HALTED", "action": "HALT"}]
        assert rows(db, "select status from runs")[0]["status"] == "halted"
        assert server.sent_labels() == []
    finally:
        server.stop()


def _mount_tmpfs(path: Path, size_kb: int) -> None:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (needs root): {mounted.stderr.strip()}")


@pytest.mark.slow
def test_a_full_disk_halts_with_exit_status_3_and_a_restart_loses_nothing(live_clock_server, tmp_path):
    """The decision log lives on a 1 MiB tmpfs that a filler file nearly fills: the journal runs out of
    room mid-run.  The bot halts (exit 3) with the reason, whatever was sent is in the journal, and
    once room is made a restart resumes, resolves what was in flight and matches the exchange."""
    server = live_clock_server
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, 1024)
    try:
        open_position(server, -START)
        config = write_testnet_config(
            tmp_path / "full.toml",
            server,
            run={"db": str(disk / "run.db"), "interval_s": 0},
            policy={"band": 0.01},
        )
        db = disk / "run.db"
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (1024 - 360) * 1024)
        # the market keeps moving, so the bot keeps trading while the disk fills
        proc = start_bot(config)
        try:
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                server.post(
                    "/_sim/move", {"vol_shift": random.Random(len(str(deadline))).choice([-0.05, 0.05])}
                )
                time.sleep(0.2)
        finally:
            code, output = stop(proc)
        assert code == 3, output
        assert "halted" in output and ("disk is full" in output or "disk I/O" in output), output
        assert "Traceback" not in output
        filler.unlink()
        resumed = start_bot(config, "--cycles", "10")
        out, err = resumed.communicate(timeout=90)
        assert resumed.returncode == 0, out + err
        assert integrity_ok(db)
        assert_journal_matches_exchange(db, server, start=-START)
        statuses = [r["status"] for r in rows(db, "select status from runs order by id")]
        assert statuses[-1] == "finished" and statuses[0] in ("halted", "crashed")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# ------------------------------------------------------------------ one bot per log


def test_a_second_run_on_the_same_log_refuses_and_a_killed_run_is_closed_as_crashed(tmp_path):
    server = Server()
    try:
        open_position(server, -START)
        config = write_testnet_config(tmp_path / "one.toml", server, run={"interval_s": 0.2})
        db = tmp_path / "run.db"
        first = start_bot(config)
        try:
            wait_until(lambda: has_cycles(db, 2), 30, "the first bot's cycles")
            second = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "1"], env=bot_env())
            assert second.exit_code == 1
            lines = [line for line in second.output.splitlines() if line.strip()]
            assert len(lines) == 1 and f"process {first.pid}" in lines[0] and "in use" in lines[0]
            dry = CliRunner().invoke(
                cli, ["run", "--config", str(config), "--cycles", "1", "--dry-run"], env=bot_env()
            )
            assert dry.exit_code == 1 and "in use" in dry.output  # the log has one writer, dry or not
        finally:
            first.kill()
            first.communicate(timeout=10)
        after = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "1"], env=bot_env())
        assert after.exit_code == 0, after.output
        runs = rows(db, "select id, status, exit_reason from runs order by id")
        assert runs[0]["status"] == "crashed" and f"process {first.pid}" in runs[0]["exit_reason"]
        assert runs[1]["status"] == "finished"
        assert rows(db, "select count(*) as n from events where kind = 'crashed_run'")[0]["n"] == 1
    finally:
        server.stop()


def test_two_logs_on_one_account_do_not_both_trade(tmp_path):
    server = Server()
    try:
        open_position(server, -START)
        configs = []
        for name in ("a", "b"):  # separate logs, one user's lock folder: the account's lock is shared
            (tmp_path / name).mkdir()
            locks = {"account_lock_dir": str(tmp_path / "locks")}
            configs.append(write_testnet_config(tmp_path / name / "run.toml", server, run=locks))
        a, b = configs
        first = start_bot(a)
        try:
            wait_until(lambda: has_cycles(tmp_path / "a" / "run.db", 1), 30, "the first bot")
            second = CliRunner().invoke(cli, ["run", "--config", str(b), "--cycles", "1"], env=bot_env())
            assert second.exit_code == 1 and "the account" in second.output and "in use" in second.output
            assert KEY not in second.output
        finally:
            stop(first)
    finally:
        server.stop()


# ------------------------------------------------------------------ the exchange's clock


def test_venue_time_is_the_exchange_clock_and_skew_is_recorded(tmp_path):
    """The exchange's clock runs an hour behind ours: the log records its time and the skew, data is
    not called stale for it, and the skew is warned about."""
    behind = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 3600))
    server = Server(speed=1, start=behind)
    try:
        open_position(server, -START)
        config = write_testnet_config(
            tmp_path / "clock.toml", server, guards={"max_clock_skew_s": 5, "max_data_age_s": 60}
        )
        result = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "3"], env=bot_env())
        assert result.exit_code == 0, result.output
        db = tmp_path / "run.db"
        cycles = rows(db, "select ts, venue_time, skew_s, action, reason from cycles order by n")
        for c in cycles:
            assert 3590 < c["skew_s"] < 3610
            assert c["venue_time"][:13] == behind[:13] or c["venue_time"] < c["ts"]
            assert "stale" not in (c["reason"] or "")
        assert any(c["action"] == "REBALANCE" for c in cycles)
        assert rows(db, "select count(*) as n from events where kind = 'clock_skew'")[0]["n"] == 3
    finally:
        server.stop()


def test_data_stamped_in_the_future_is_not_traded_on(tmp_path):
    server = Server(speed=1)
    try:
        open_position(server, -START)
        config = write_testnet_config(tmp_path / "future.toml", server)
        now_ms = server.get("/_sim/state")["now_ms"]
        server.fault(method="public/ticker", kind="rewrite", path="result.timestamp", value=now_ms + 120_000)
        result = CliRunner().invoke(cli, ["run", "--config", str(config), "--cycles", "2"], env=bot_env())
        assert result.exit_code == 0, result.output
        first, second = rows(tmp_path / "run.db", "select action, reason from cycles order by n")
        assert first["action"] == "HOLD" and "data from the future" in first["reason"]
        assert second["action"] == "REBALANCE"
    finally:
        server.stop()
