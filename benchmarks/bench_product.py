"""The product's own paths around the kernels (imported by bench.py): the venue, the simulator's clock,
replays, and the review commands ``levctl log`` and ``levctl report`` as a user runs them.

Every figure has a baseline measured in the same run: the simulator with one order in its history,
the replay journaled like the live loop, a bare interpreter start for the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

BestOf = Callable[[Callable[[], object], int], float]
# levctl in a fresh process that reports its own peak memory (VmHWM) when it exits: the resource
# usage of a child also counts what it inherited from this (large) process before it exec'd
PEAK_MEMORY = "peak-memory-kB:"
LEVCTL = [
    sys.executable,
    "-c",
    "import atexit, sys\n"
    "def peak():\n"
    "    with open('/proc/self/status') as status:\n"
    "        kb = next(line.split()[1] for line in status if line.startswith('VmHWM'))\n"
    f"    sys.stderr.write('{PEAK_MEMORY}' + kb + '\\n')\n"
    "atexit.register(peak)\n"
    "from controller.cli import main\n"
    "main()",
]


def bench_venue(best_of: BestOf, repeats: int) -> dict[str, float]:
    """REST calls and latency of one snapshot through real ccxt over HTTP, for 1 and 200 positions."""
    import urllib.request

    from controller.sim import SimConfig, SimExchange
    from controller.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimServer
    from controller.venues.ccxt_deribit import CcxtVenue, CcxtVenueSettings
    from controller.venues.sim import SimVenue

    engine = SimExchange(SimConfig(initial_balance=1000.0))
    figures: dict[str, float] = {}
    with SimServer(engine) as server:
        venue = CcxtVenue(
            CcxtVenueSettings(rest_url=server.url),
            api_key=DEFAULT_API_KEY,
            api_secret=DEFAULT_API_SECRET,
            clock=lambda: engine.now,
        )
        venue.load_instruments()
        local = SimVenue(engine)

        def calls_per_snapshot() -> int:
            urllib.request.urlopen(urllib.request.Request(server.url + "/_sim/requests/clear", data=b"{}"))
            venue.snapshot()
            with urllib.request.urlopen(server.url + "/_sim/requests") as reply:
                return len(json.load(reply)["requests"])

        engine.place_order(name="BTC-PERPETUAL", direction="buy", amount=10_000, label="bench")
        for size in (1, 200):
            if size == 200:
                for i, x in enumerate(sorted(engine.instruments(kind="option"), key=lambda x: x.name)[:199]):
                    engine.place_order(name=x.name, direction="buy", amount=0.1, label=f"bench-{i}")
            figures[f"rest_calls_per_snapshot_{size}_positions"] = calls_per_snapshot()
            figures[f"snapshot_ms_http_{size}_positions"] = best_of(venue.snapshot, repeats) * 1e3
            figures[f"snapshot_ms_in_process_{size}_positions"] = best_of(local.snapshot, repeats) * 1e3
    return figures


def bench_rest_calls_per_cycle() -> dict[str, float]:
    """REST calls one whole cycle costs against the HTTP simulator (real ccxt), 1 and 200 positions."""
    import urllib.request
    from datetime import UTC, datetime

    import schedule

    from controller.app import RunOptions, build_controller
    from controller.config import build_config
    from controller.sim import SimConfig, SimExchange
    from controller.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimServer

    figures: dict[str, float] = {}
    engine = SimExchange(SimConfig(initial_balance=1000.0, start=datetime.now(UTC).replace(microsecond=0)))
    with SimServer(engine) as server, tempfile.TemporaryDirectory() as tmp:
        config = build_config(
            {
                "run": {
                    "mode": "dry-run",
                    "interval_s": 0,
                    "db": str(Path(tmp) / "b.db"),
                    "log_file": str(Path(tmp) / "b.log"),
                },
                "venue": {"kind": "ccxt", "ccxt": {"rest_url": server.url}},
            }
        )
        env = {"LEVCTL_API_KEY": DEFAULT_API_KEY, "LEVCTL_API_SECRET": DEFAULT_API_SECRET}
        for size in (1, 200):
            if size == 200:
                for i, x in enumerate(sorted(engine.instruments(kind="option"), key=lambda x: x.name)[:199]):
                    engine.place_order(name=x.name, direction="buy", amount=0.1, label=f"bench-{i}")
            else:
                engine.place_order(name="BTC-PERPETUAL", direction="buy", amount=10_000, label="bench")
            controller = build_controller(config, RunOptions(dry_run=True), env=env)
            controller.start()
            urllib.request.urlopen(urllib.request.Request(server.url + "/_sim/requests/clear", data=b"{}"))
            controller.run(cycles=1, scheduler=schedule.Scheduler(), should_stop=lambda: False)
            with urllib.request.urlopen(server.url + "/_sim/requests") as reply:
                figures[f"rest_calls_per_cycle_{size}_positions"] = len(json.load(reply)["requests"])
            controller.finish("finished", "benchmark")
            controller.close()
    return figures


def bench_sim_advance(best_of: BestOf, repeats: int, history: int) -> dict[str, float]:
    """One virtual hour of the simulator (12 market steps) with 1 and with ``history`` orders placed before.

    The history is real orders through ``place_order``: market orders that filled, and limit orders
    that were cancelled; one limit order rests (away from the market) beside a perpetual position.
    """
    from controller.sim import SimConfig, SimExchange

    def engine_with(orders: int) -> Any:
        engine = SimExchange(SimConfig(initial_balance=100.0))
        engine.place_order(name="BTC-PERPETUAL", direction="buy", amount=10_000, label="position")
        for i in range(orders - 1):
            if i % 2:
                engine.place_order(name="BTC-PERPETUAL", direction="buy", amount=10, label=f"m{i}")
            else:
                resting = engine.place_order(
                    name="BTC-PERPETUAL",
                    direction="buy",
                    amount=10,
                    order_type="limit",
                    price=1000.0,
                    label=f"l{i}",
                )
                engine.cancel(resting.order_id)
        engine.place_order(
            name="BTC-PERPETUAL", direction="sell", amount=10, order_type="limit", price=1e6, label="resting"
        )
        return engine

    few, many = engine_with(1), engine_with(history)
    one = best_of(lambda: few.advance(3600), repeats)
    lots = best_of(lambda: many.advance(3600), repeats)
    return {
        "sim_orders_history": history,
        "sim_advance_hour_ms_1_order": one * 1e3,
        "sim_advance_hour_ms_many_orders": lots * 1e3,
        "sim_advance_many_over_one": lots / one,
    }


def history_path() -> Path | None:
    folder = os.environ.get("LEVCTL_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    source = Path(folder) / "btc_2h_dvol_funding.csv"
    return source if source.exists() else None


def bench_replay(rows: int, straddle_rows: int) -> dict[str, float]:
    """What ``levctl replay`` runs, the controller only (``--no-baselines``): cycles per second for the
    perpetual and the short-straddle book; the baseline is the perpetual book journaled like the live
    loop (one commit per cycle)."""
    from controller.config import load_config
    from controller.replay.run import replay
    from controller.sim.market import load_replay_csv

    source = history_path()
    if source is None:
        return {}
    full = load_replay_csv(source)

    def rate(book: str, n: int, cycles_per_commit: int = 2000) -> float:
        config = load_config(None, embedded=f"replay-{book}.toml")
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            replay(
                config,
                full.head(n),
                Path(tmp) / "r.db",
                roles=("controller",),
                cycles_per_commit=cycles_per_commit,
            )
            return n / (time.perf_counter() - start)

    perpetual = rate("perpetual", rows)
    per_cycle = rate("perpetual", min(rows, 3000), cycles_per_commit=1)
    return {
        "replay_rows_perpetual": rows,
        "replay_cycles_per_s_perpetual": perpetual,
        "replay_full_file_s_perpetual": full.times_ms.size / perpetual,
        "replay_commit_per_cycle_cycles_per_s_perpetual": per_cycle,
        "replay_rows_straddle": straddle_rows,
        "replay_cycles_per_s_straddle": rate("straddle", straddle_rows),
    }


def start_bench_run(journal: Any, started_at: Any) -> int:
    """A run in a benchmark's decision log."""
    return int(
        journal.start_run(
            started_at=started_at,
            mode="bench",
            venue="sim",
            config_source="bench",
            config_json="{}",
            config_sha256="-",
            version="bench",
        )
    )


def write_synthetic_log(path: Path, cycles: int, seed: int = 5) -> None:
    """A decision log of ``cycles`` hourly cycles (every column filled), an order every 50 cycles, events."""
    from controller.journal import Journal
    from controller.sim import DEFAULT_START

    rng = np.random.default_rng(seed)
    journal = Journal(path)
    run = start_bench_run(journal, DEFAULT_START)
    lev = 1.0 + np.cumsum(rng.normal(0, 0.01, cycles))
    equity = 1e6 * np.exp(np.cumsum(rng.normal(0, 0.005, cycles)))
    columns = (
        "run_id, n, ts, venue_time, state, action, reason, equity_usd, equity_coin, index_price, sigma_hat, "
        "sigma_source, delta_coin, delta_usd, dollar_gamma_usd, vega_usd, theta_usd, leverage, signed_leverage, "
        "leverage_iv, leverage_stress, gross_leverage, target_leverage, band_low, band_high, margin_ratio, "
        "worst_scenario_loss_usd, worst_scenario, liquidation_move, latency_ms, rest_calls, advice"
    )
    rows = []
    for i in range(cycles):
        ts = (DEFAULT_START + timedelta(hours=i)).isoformat()
        rebalance = i % 50 == 0
        rows.append(
            (
                run,
                i + 1,
                ts,
                ts,
                "ACTIVE",
                "REBALANCE" if rebalance else "HOLD",
                f"leverage {lev[i]:+.2f}x {'outside' if rebalance else 'inside'} the band [+0.90, +1.10]",
                float(equity[i]),
                float(equity[i]) / 90_000,
                90_000.0,
                0.55,
                "chain",
                float(lev[i] * equity[i]) / 90_000,
                float(lev[i] * equity[i]),
                1.0,
                0.0,
                0.0,
                float(abs(lev[i])),
                float(lev[i]),
                float(lev[i]) * 0.9,
                float(abs(lev[i])),
                float(abs(lev[i])),
                1.0,
                0.9,
                1.1,
                0.1,
                -1e5,
                "PM -16% vol up",
                -0.6,
                3.0,
                5,
                "[]",
            )
        )
    marks = ",".join("?" for _ in columns.split(","))
    conn = journal.db.conn
    conn.executemany(f"insert into cycles ({columns}) values ({marks})", rows)
    orders = [
        (
            run,
            i + 1,
            f"lv-bench-{i}",
            "BTC-PERPETUAL",
            "buy",
            1000.0,
            "market",
            0,
            "filled",
            f"SIM-{i}",
            1000.0,
            90_000.0,
            1e-5,
            None,
            json.dumps({"notional_usd": 1000.0}),
            rows[i][2],
        )
        for i in range(0, cycles, 50)
    ]
    conn.executemany(
        "insert into orders (run_id, cycle_id, label, instrument, side, amount, type, reduce_only, status, "
        "exchange_order_id, filled_amount, avg_price, fee_coin, error, request, ts) "
        "values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        orders,
    )
    conn.executemany(
        "insert into events (run_id, cycle_id, ts, level, kind, message) values (?,?,?,?,?,?)",
        [
            (run, i + 1, rows[i][2], "warning", "venue_retry", "attempt 1 failed; retrying")
            for i in range(0, cycles, 500)
        ],
    )
    conn.commit()
    journal.close()


def _run_cli(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one ``levctl`` process."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        status = subprocess.run([*LEVCTL, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        wall = time.perf_counter() - start
        errors.seek(0)
        text = errors.read().decode()
    if status.returncode != 0:
        raise RuntimeError(f"levctl {' '.join(args)} failed: {text}")
    peak_kb = next(int(line.split(":")[1]) for line in text.splitlines() if line.startswith(PEAK_MEMORY))
    return wall, peak_kb / 1024.0


def bench_review(cycles: int, repeats: int) -> dict[str, float]:
    """``levctl log`` and ``levctl report`` as a user runs them (a fresh process each), on a log of
    ``cycles`` cycles; the baseline is a bare interpreter start, and the log query alone in process."""
    from controller.review.log import recent_activity

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "big.db"
        write_synthetic_log(db, cycles)
        bare = min(_run_bare() for _ in range(repeats))
        log_runs = [_run_cli(["log", "--db", str(db)], folder) for _ in range(repeats)]
        query = min(_timed(lambda: recent_activity(db)) for _ in range(repeats))
        report_runs = [
            _run_cli(["report", "--db", str(db), "--out", str(folder / "out")], folder) for _ in range(2)
        ]
        summary_runs = [_run_cli(["report", "--db", str(db), "--json"], folder) for _ in range(2)]
    return {
        "review_cycles": cycles,
        "python_start_s": bare,
        "log_wall_s": min(w for w, _ in log_runs),
        "log_query_s": query,
        "report_wall_s": min(w for w, _ in report_runs),
        "report_peak_mb": min(m for _, m in report_runs),
        "report_json_wall_s": min(w for w, _ in summary_runs),
        "report_json_peak_mb": min(m for _, m in summary_runs),
    }


def _run_bare() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def product_lines(f: dict[str, Any]) -> list[str]:
    lines = [
        f"venue snapshot (real ccxt over HTTP to the simulator): REST calls "
        f"{f['rest_calls_per_snapshot_1_positions']} for 1 position, "
        f"{f['rest_calls_per_snapshot_200_positions']} for 200   goal: equal, <= 6",
        f"  latency {f['snapshot_ms_http_1_positions']:.1f} ms / {f['snapshot_ms_http_200_positions']:.1f} ms over HTTP, "
        f"{f['snapshot_ms_in_process_1_positions']:.1f} ms / {f['snapshot_ms_in_process_200_positions']:.1f} ms in process",
        f"REST calls per whole cycle (real ccxt, HTTP simulator): {f['rest_calls_per_cycle_1_positions']:.0f} "
        f"for 1 position, {f['rest_calls_per_cycle_200_positions']:.0f} for 200   goal: equal, <= 6",
        f"simulator, one virtual hour (12 steps): {f['sim_advance_hour_ms_many_orders']:.2f} ms with "
        f"{f['sim_orders_history']:,} orders in its history vs {f['sim_advance_hour_ms_1_order']:.2f} ms with 1 "
        f"-> {f['sim_advance_many_over_one']:.2f}x   goal: ~1x",
        f"levctl log on {f['review_cycles']:,} cycles: {f['log_wall_s']:.2f} s wall (a bare interpreter starts in "
        f"{f['python_start_s']:.2f} s; the query alone {f['log_query_s'] * 1e3:.1f} ms)   goal <= 0.3 s",
        f"levctl report on {f['review_cycles']:,} cycles: {f['report_wall_s']:.2f} s, peak {f['report_peak_mb']:.0f} MB "
        f"(--json summary: {f['report_json_wall_s']:.2f} s, {f['report_json_peak_mb']:.0f} MB)   goal <= 3 s, <= 200 MB",
    ]
    if "replay_cycles_per_s_perpetual" in f:
        lines += [
            f"replay of the real 2-hour history, perpetual book ({f['replay_rows_perpetual']:,} rows): "
            f"{f['replay_cycles_per_s_perpetual']:,.0f} cycles/s, the full file in {f['replay_full_file_s_perpetual']:.1f} s"
            "   goal >= 3,000 cycles/s",
            f"  vs one commit per cycle (the live loop's journal): {f['replay_commit_per_cycle_cycles_per_s_perpetual']:,.0f}"
            f" cycles/s -> batching {f['replay_cycles_per_s_perpetual'] / f['replay_commit_per_cycle_cycles_per_s_perpetual']:.2f}x",
            f"  short-straddle book ({f['replay_rows_straddle']:,} rows): {f['replay_cycles_per_s_straddle']:,.0f} cycles/s"
            "   goal >= 1,000 cycles/s",
        ]
    else:
        lines.append("replay: ../shared/data/btc_2h_dvol_funding.csv not found, not measured")
    return lines
