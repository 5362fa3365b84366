"""levctl benchmarks: our vectorised kernels against baselines measured in the same run.

    python benchmarks/bench.py            # a readable report
    python benchmarks/bench.py --json     # one JSON object of named figures
    python benchmarks/bench.py --quick    # smaller sizes, for a smoke run

Figures (goals from issue 2, on the 2-core reference machine):

* greeks throughput at N = 1,000,000 (goal >= 10 M options/s) and against the numpy floor
  (exp + log + ndtr over the same N doubles: the least any Black-76 kernel must do);
* greeks at N = 10,000 against a per-option vollib loop (price, delta, gamma, vega, theta)
  (goal >= 150x);
* implied vol at N = 10,000 (goal >= 500,000 options/s) against vollib's implied_volatility
  (Let's Be Rational) loop (goal >= 25x), with the max error on well-posed inputs beside it.

Timings are the best of several repeats (our kernels) or one full pass (the Python loops, which
take long enough to be stable).  Speed is measured here, never asserted in unit tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import scipy
from scipy.special import ndtr
from vollib.black import black as vollib_black
from vollib.black.greeks import analytical as vollib_greeks
from vollib.black.implied_volatility import implied_volatility as vollib_iv

import pricing
from pricing.black76 import set_threads


def best_of(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up: first touches of fresh memory are page faults, not arithmetic
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def chain_like_inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    """Options as a book holds them: 1 week to 1.5 years, 20-150 % vol, +-70 % log-moneyness."""
    rng = np.random.default_rng(seed)
    forward = rng.uniform(2e4, 1.2e5, n)
    return {
        "forward": forward,
        "strike": forward * np.exp(rng.uniform(-0.7, 0.7, n)),
        "t_years": rng.uniform(7 / 365, 1.5, n),
        "vol": rng.uniform(0.2, 1.5, n),
        "is_call": rng.random(n) < 0.5,
    }


def bench_greeks(n_large: int, n_loop: int, repeats: int) -> dict[str, float]:
    big = chain_like_inputs(n_large, seed=1)
    t_ours_large = best_of(lambda: pricing.greeks(**big), repeats)
    threads = set_threads(1)
    try:
        t_ours_large_single = best_of(lambda: pricing.greeks(**big), repeats)
    finally:
        set_threads(threads)
    x = big["forward"] / big["strike"]
    d = np.log(x)

    def floor() -> None:
        np.exp(d)
        np.log(x)
        ndtr(d)

    t_floor = best_of(floor, repeats)

    small = chain_like_inputs(n_loop, seed=2)
    t_ours_small = best_of(lambda: pricing.greeks(**small), repeats * 5)
    flags = np.where(small["is_call"], "c", "p")
    rows = list(zip(flags, small["forward"], small["strike"], small["t_years"], small["vol"], strict=True))

    def vollib_loop() -> None:
        for flag, f, k, t, v in rows:
            vollib_black(flag, f, k, t, 0.0, v)
            vollib_greeks.delta(flag, f, k, t, 0.0, v)
            vollib_greeks.gamma(flag, f, k, t, 0.0, v)
            vollib_greeks.vega(flag, f, k, t, 0.0, v)
            vollib_greeks.theta(flag, f, k, t, 0.0, v)

    start = time.perf_counter()
    vollib_loop()
    t_loop = time.perf_counter() - start
    return {
        "greeks_n_large": n_large,
        "greeks_per_s_large": n_large / t_ours_large,
        "greeks_ms_large": t_ours_large * 1e3,
        "greeks_threads": threads,
        "greeks_per_s_large_one_thread": n_large / t_ours_large_single,
        "numpy_floor_ms_large": t_floor * 1e3,
        "greeks_over_floor": t_ours_large / t_floor,
        "greeks_n_loop": n_loop,
        "greeks_per_s_small": n_loop / t_ours_small,
        "vollib_greeks_loop_per_s": n_loop / t_loop,
        "greeks_speedup_vs_vollib": t_loop / t_ours_small,
    }


def bench_implied_vol(n: int, repeats: int) -> dict[str, float]:
    inputs = chain_like_inputs(n, seed=3)
    true_vol = inputs.pop("vol")
    g = pricing.greeks(**inputs, vol=true_vol)
    price = g.price
    result = pricing.implied_vol(price=price, **inputs)
    t_ours = best_of(lambda: pricing.implied_vol(price=price, **inputs), repeats * 5)

    # well-posed: a price known to a few ulps of max(F, K) pins the vol to better than 1e-10
    eps = np.finfo(float).eps
    vol_noise = 8 * eps * np.maximum(inputs["forward"], inputs["strike"]) / np.maximum(g.vega * 100.0, 1e-300)
    well_posed = vol_noise <= 1e-10
    flags = np.where(inputs["is_call"], "c", "p")
    lbr = np.full(n, np.nan)
    start = time.perf_counter()
    for i in range(n):
        # LBR raises for prices without a volatility; those stay NaN and are left out below
        with contextlib.suppress(Exception):
            lbr[i] = vollib_iv(
                price[i], inputs["forward"][i], inputs["strike"][i], 0.0, inputs["t_years"][i], flags[i]
            )
    t_loop = time.perf_counter() - start
    both = well_posed & result.ok & np.isfinite(lbr)
    return {
        "iv_n": n,
        "iv_per_s": n / t_ours,
        "iv_ms": t_ours * 1e3,
        "vollib_iv_loop_per_s": n / t_loop,
        "iv_speedup_vs_vollib": t_loop / t_ours,
        "iv_well_posed": int(well_posed.sum()),
        "iv_not_ok": int((~result.ok).sum()),
        "iv_max_error_vs_true_well_posed": float(
            np.max(np.abs(result.vol - true_vol)[well_posed & result.ok])
        ),
        "iv_max_error_vs_lbr_well_posed": float(np.max(np.abs(result.vol - lbr)[both])),
        "iv_mean_iterations": float(result.iterations[result.ok].mean()),
    }


def bench_venue(repeats: int) -> dict[str, float]:
    """REST calls and latency of one snapshot through real ccxt over HTTP, for 1 and 200 positions."""
    import json as _json
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
                return len(_json.load(reply)["requests"])

        engine.place_order(name="BTC-PERPETUAL", direction="buy", amount=10_000, label="bench")
        for size in (1, 200):
            if size == 200:
                for i, x in enumerate(sorted(engine.instruments(kind="option"), key=lambda x: x.name)[:199]):
                    engine.place_order(name=x.name, direction="buy", amount=0.1, label=f"bench-{i}")
            figures[f"rest_calls_per_snapshot_{size}_positions"] = calls_per_snapshot()
            figures[f"snapshot_ms_http_{size}_positions"] = best_of(venue.snapshot, repeats) * 1e3
            figures[f"snapshot_ms_in_process_{size}_positions"] = best_of(local.snapshot, repeats) * 1e3
    return figures


def bench_cycle_compute(repeats: int) -> dict[str, float]:
    """One cycle without venue I/O: risk (book greeks, σ̂ from the chain, 47 full-revaluation
    scenarios, liquidation search) + policy + the journal write (one SQLite transaction)."""
    import tempfile
    from datetime import timedelta
    from pathlib import Path

    from controller.config import load_config
    from controller.execution import DryRunExecutor
    from controller.journal import Journal
    from controller.records import cycle_record
    from controller.risk.assess import assess
    from controller.risk.policy import PolicyState, decide
    from controller.risk.volatility import VolState
    from controller.sim import SimConfig, SimExchange
    from controller.venues.sim import SimVenue

    config = load_config(None)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "bench.db")
        run_id = journal.start_run(
            started_at=SimConfig().start,
            mode="bench",
            venue="sim",
            config_source="bench",
            config_json="{}",
            config_sha256="-",
            version="bench",
        )
        for size in (10, 100, 1000):
            engine = SimExchange(SimConfig(initial_balance=10_000.0))
            venue = SimVenue(engine)
            specs = venue.load_instruments()
            options = sorted(x.name for x in engine.instruments(kind="option"))
            engine.place_order(name="BTC-PERPETUAL", direction="sell", amount=100_000, label="bench")
            for i in range(size - 1):  # options repeat when the book is larger than the listing
                engine.place_order(name=options[i % len(options)], direction="buy", amount=0.1, label="b")
            snap = venue.snapshot()
            snap = replace(
                snap, positions=tuple(snap.positions[i % len(snap.positions)] for i in range(size))
            )
            now = snap.taken_at + timedelta(seconds=1)
            executor = DryRunExecutor()

            def compute(snap=snap, now=now, specs=specs) -> tuple:  # type: ignore[no-untyped-def]
                report, _ = assess(snap, config.risk, VolState(), now=now)
                decision, _ = decide(
                    report,
                    snap,
                    specs["BTC-PERPETUAL"],
                    config.policy,
                    config.guards,
                    config.advice,
                    PolicyState(),
                    now=now,
                )
                return report, decision

            def cycle(snap=snap, now=now, compute=compute, executor=executor) -> None:  # type: ignore[no-untyped-def]
                report, decision = compute()
                execution = executor.execute([], gate=lambda order: None)  # a dry run records nothing more
                journal.write_cycle(cycle_record(run_id, 1, now, snap, report, decision, execution, 0.0))

            figures[f"cycle_compute_ms_{size}_positions"] = best_of(compute, repeats) * 1e3
            figures[f"cycle_with_journal_ms_{size}_positions"] = best_of(cycle, repeats) * 1e3
        journal.close()
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
    import tempfile
    from pathlib import Path

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


def bench_report(cycles: int) -> dict[str, float]:
    """`levctl report` on a synthetic decision log of many cycles: the summary, and the full page."""
    import tempfile
    import time as _time
    from datetime import timedelta
    from pathlib import Path

    from controller.journal import Journal
    from controller.review.report import load_log, summarize, write_report
    from controller.sim import DEFAULT_START

    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "big.db")
        run = journal.start_run(
            started_at=DEFAULT_START,
            mode="bench",
            venue="sim",
            config_source="bench",
            config_json="{}",
            config_sha256="-",
            version="bench",
        )
        lev = 1.0 + np.cumsum(rng.normal(0, 0.01, cycles))
        equity = 1e6 * np.exp(np.cumsum(rng.normal(0, 0.005, cycles)))
        rows = [
            (
                run,
                i + 1,
                (DEFAULT_START + timedelta(hours=i)).isoformat(),
                "ACTIVE",
                "REBALANCE" if i % 50 == 0 else "HOLD",
                "bench",
                float(equity[i]),
                90_000.0,
                0.55,
                float(lev[i] * equity[i]),
                float(lev[i]),
                1.0,
                0.9,
                1.1,
                0.1,
                -1e5,
                1.0,
                0.0,
                0.0,
                0.0,
                -50.0,
            )
            for i in range(cycles)
        ]
        journal.db.conn.executemany(
            "insert into cycles (run_id, n, ts, state, action, reason, equity_usd, index_price, sigma_hat, delta_usd, "
            "signed_leverage, target_leverage, band_low, band_high, margin_ratio, worst_scenario_loss_usd, leverage, "
            "dollar_gamma_usd, vega_usd, theta_usd, latency_ms) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        journal.db.conn.commit()
        journal.close()
        start = _time.perf_counter()
        summarize(load_log(Path(tmp) / "big.db"))
        summary_s = _time.perf_counter() - start
        start = _time.perf_counter()
        write_report(load_log(Path(tmp) / "big.db"), Path(tmp) / "out", title="bench")
        report_s = _time.perf_counter() - start
    return {"report_cycles": cycles, "report_summary_s": summary_s, "report_full_s": report_s}


def bench_replay(rows: int, straddle_rows: int) -> dict[str, float]:
    """`levctl replay` of the real 2-hour history (the controller run only): rows per second for the
    perpetual book and the short-straddle book, and for the perpetual book with the live loop's
    journaling (one commit per cycle) as the baseline the batched replay journal is measured against."""
    import tempfile
    import time as _time
    from pathlib import Path

    from controller.config import load_config
    from controller.replay.run import replay
    from controller.sim.market import load_replay_csv

    folder = os.environ.get("LEVCTL_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    source = Path(folder) / "btc_2h_dvol_funding.csv"
    if not source.exists():
        return {}
    full = load_replay_csv(source)

    def rate(book: str, n: int, cycles_per_commit: int = 2000) -> float:
        config = load_config(None, embedded=f"replay-{book}.toml")
        with tempfile.TemporaryDirectory() as tmp:
            start = _time.perf_counter()
            replay(
                config,
                full.head(n),
                Path(tmp) / "r.db",
                roles=("controller",),
                cycles_per_commit=cycles_per_commit,
            )
            return n / (_time.perf_counter() - start)

    perp = rate("perpetual", rows)
    per_cycle = rate("perpetual", min(rows, 3000), cycles_per_commit=1)
    return {
        "replay_rows": rows,
        "replay_perp_rows_per_s": perp,
        "replay_perp_full_file_s": full.times_ms.size / perp,
        "replay_perp_commit_per_cycle_rows_per_s": per_cycle,
        "replay_straddle_rows": straddle_rows,
        "replay_straddle_rows_per_s": rate("straddle", straddle_rows),
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def report(figures: dict[str, Any]) -> str:
    f = figures
    lines = [
        f"machine: {f['machine']}",
        "",
        f"greeks, N = {f['greeks_n_large']:,}: {f['greeks_per_s_large'] / 1e6:.1f} M options/s "
        f"({f['greeks_ms_large']:.1f} ms; numpy floor exp+log+ndtr {f['numpy_floor_ms_large']:.1f} ms, "
        f"ours = {f['greeks_over_floor']:.2f}x the floor)   goal >= 10 M/s",
        f"  ({f['greeks_threads']} threads; on one thread "
        f"{f['greeks_per_s_large_one_thread'] / 1e6:.1f} M options/s)",
        f"greeks, N = {f['greeks_n_loop']:,}: {f['greeks_per_s_small'] / 1e6:.1f} M options/s vs vollib loop "
        f"{f['vollib_greeks_loop_per_s']:,.0f}/s -> {f['greeks_speedup_vs_vollib']:,.0f}x   goal >= 150x",
        f"implied vol, N = {f['iv_n']:,}: {f['iv_per_s']:,.0f} options/s ({f['iv_ms']:.2f} ms) vs vollib "
        f"implied_volatility loop {f['vollib_iv_loop_per_s']:,.0f}/s -> {f['iv_speedup_vs_vollib']:.1f}x   "
        "goals >= 500,000/s and >= 25x",
        f"  max |error| on {f['iv_well_posed']:,} well-posed inputs: "
        f"{f['iv_max_error_vs_true_well_posed']:.1e} "
        f"vs the true vol, {f['iv_max_error_vs_lbr_well_posed']:.1e} vs LBR; "
        f"mean iterations {f['iv_mean_iterations']:.2f}; no vol (with reason): {f['iv_not_ok']}",
        f"venue snapshot (real ccxt over HTTP to the simulator): REST calls "
        f"{f['rest_calls_per_snapshot_1_positions']} for 1 position, "
        f"{f['rest_calls_per_snapshot_200_positions']} for 200   goal: equal, <= 6",
        f"  latency {f['snapshot_ms_http_1_positions']:.1f} ms / "
        f"{f['snapshot_ms_http_200_positions']:.1f} ms over HTTP, "
        f"{f['snapshot_ms_in_process_1_positions']:.1f} ms / "
        f"{f['snapshot_ms_in_process_200_positions']:.1f} ms in process",
        "  (1 / 200 positions, ~424 listed instruments; ccxt's rate limiter spaces calls 50 ms apart)",
        f"cycle without venue I/O (risk with 47 scenarios + policy + journal write): "
        f"{f['cycle_with_journal_ms_10_positions']:.1f} ms / {f['cycle_with_journal_ms_100_positions']:.1f} ms / "
        f"{f['cycle_with_journal_ms_1000_positions']:.1f} ms for 10 / 100 / 1,000 positions   goals 5 / 10 / 40 ms",
        f"  of which risk + policy {f['cycle_compute_ms_10_positions']:.1f} / "
        f"{f['cycle_compute_ms_100_positions']:.1f} / {f['cycle_compute_ms_1000_positions']:.1f} ms",
        f"REST calls per whole cycle (real ccxt, HTTP simulator): {f['rest_calls_per_cycle_1_positions']:.0f} "
        f"for 1 position, {f['rest_calls_per_cycle_200_positions']:.0f} for 200   goal: equal, <= 6",
        f"report on a log of {f['report_cycles']:,} cycles: summary {f['report_summary_s']:.2f} s, "
        f"full HTML with 5 plots {f['report_full_s']:.2f} s   goal: a few seconds",
    ]
    if "replay_perp_rows_per_s" in f:
        lines += [
            f"replay of the real 2-hour history, perpetual book ({f['replay_rows']:,} rows): "
            f"{f['replay_perp_rows_per_s']:,.0f} cycles/s, the full file in {f['replay_perp_full_file_s']:.1f} s   "
            "goal >= 2,000 cycles/s",
            f"  vs one commit per cycle (the live loop's journal): {f['replay_perp_commit_per_cycle_rows_per_s']:,.0f}"
            f" cycles/s -> batching {f['replay_perp_rows_per_s'] / f['replay_perp_commit_per_cycle_rows_per_s']:.2f}x",
            f"  short-straddle book ({f['replay_straddle_rows']:,} rows, 52 listed options revalued "
            f"every cycle): {f['replay_straddle_rows_per_s']:,.0f} cycles/s",
        ]
    else:
        lines.append("replay: ../shared/data/btc_2h_dvol_funding.csv not found, not measured")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object of named figures")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)
    n_large, n_loop, repeats = (100_000, 1_000, 2) if args.quick else (1_000_000, 10_000, 5)
    figures: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    figures.update(bench_greeks(n_large, n_loop, repeats))
    figures.update(bench_implied_vol(n_loop, repeats))
    figures.update(bench_venue(repeats))
    figures.update(bench_cycle_compute(repeats))
    figures.update(bench_rest_calls_per_cycle())
    figures.update(bench_report(10_000 if args.quick else 100_000))
    figures.update(bench_replay(*((1_000, 200) if args.quick else (18_782, 2_000))))
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(report(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
