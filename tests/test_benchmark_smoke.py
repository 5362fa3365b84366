"""The benchmark script runs and reports its named figures (accuracy is checked, speed is not)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


def test_quick_benchmark_reports_named_figures(capsys):
    spec = importlib.util.spec_from_file_location("levctl_bench", BENCH)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "greeks_per_s_large",
        "greeks_speedup_vs_vollib",
        "numpy_floor_ms_large",
        "iv_per_s",
        "iv_speedup_vs_vollib",
        "iv_max_error_vs_lbr_well_posed",
    ):
        assert figures[key] > 0, key
    assert figures["iv_max_error_vs_lbr_well_posed"] <= 1e-8
    assert figures["iv_max_error_vs_true_well_posed"] <= 1e-8
    assert (
        figures["rest_calls_per_snapshot_1_positions"]
        == figures["rest_calls_per_snapshot_200_positions"]
        <= 6
    )
    if os.environ.get("LEVCTL_REQUIRE_SHARED_DATA") == "1":  # the replay figures need the real history
        assert figures["replay_cycles_per_s_perpetual"] > 0 and figures["replay_cycles_per_s_straddle"] > 0
