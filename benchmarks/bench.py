"""levctl benchmarks: our code against baselines measured in the same run.

    python benchmarks/bench.py            # a readable report
    python benchmarks/bench.py --json     # one JSON object of named figures
    python benchmarks/bench.py --quick    # smaller sizes, for a smoke run

Figures, each beside a baseline from the same run on the same machine:

* the kernels (issue 2): greeks at N = 1,000,000 against the numpy floor (exp + log + ndtr over the
  same N doubles) and at N = 10,000 against a per-option vollib loop; implied vol at N = 10,000
  against vollib's Let's Be Rational loop, with the max error on well-posed inputs;
* the venue (issue 3): REST calls and latency of a snapshot through real ccxt over HTTP;
* the product's own path (issue 14, :mod:`bench_cycle` and :mod:`bench_product`): the cycle on a
  realistic book (``cycle_ms_100``, ``cycle_ms_1000``, ``cycle_ms_10000``, phase by phase, against
  its arithmetic floor); an hour of the simulator with 100,000 orders in its history against one;
  replays of the real history (``replay_cycles_per_s_perpetual``, ``replay_cycles_per_s_straddle``)
  against the live loop's one commit per cycle; ``levctl log`` and ``levctl report`` as a user runs
  them (wall time and peak memory of a fresh process) against a bare interpreter start.

Timings are the best of several repeats (our code) or one full pass (the Python loops, which
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
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from scipy.special import ndtr
from vollib.black import black as vollib_black
from vollib.black.greeks import analytical as vollib_greeks
from vollib.black.implied_volatility import implied_volatility as vollib_iv

import pricing
from pricing.black76 import set_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules, however this file is loaded
from bench_cycle import SIZES, bench_cycle, cycle_lines
from bench_product import (
    bench_replay,
    bench_rest_calls_per_cycle,
    bench_review,
    bench_sim_advance,
    bench_venue,
    product_lines,
)


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
    ]
    lines += product_lines(f)
    lines += cycle_lines(f)
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
    figures.update(bench_venue(best_of, repeats))
    figures.update(bench_rest_calls_per_cycle())
    figures.update(bench_cycle(best_of, repeats, (100, 1000) if args.quick else SIZES))
    figures.update(bench_sim_advance(best_of, repeats, 2_000 if args.quick else 100_000))
    figures.update(bench_replay(*((1_000, 200) if args.quick else (18_782, 3_000))))
    figures.update(bench_review(10_000 if args.quick else 112_000, 2 if args.quick else 3))
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(report(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
