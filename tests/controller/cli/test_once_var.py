"""`levctl once --json` shows VaR and ES with their worst days once the log holds enough history."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_once_reports_var_es_and_the_worst_days_from_the_logs_history(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "perp.toml"
    default = (ROOT / "config" / "default.toml").read_text()
    fast = re.sub(r"interval_s = [0-9.]+", "interval_s = 0", default)
    config.write_text(fast.replace("[guards]", "[guards]\nmax_var_fraction = 0.5", 1))
    early = CliRunner().invoke(cli, ["once", "--config", str(config), "--json"])
    assert early.exit_code == 0, early.output
    assert json.loads(early.output)["var"] is None  # no history yet: no VaR, said so
    history = CliRunner().invoke(
        cli, ["run", "--config", str(config), "--cycles", "760"]
    )  # 760 virtual hours
    assert history.exit_code == 0, history.output
    result = CliRunner().invoke(cli, ["once", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    cycle = json.loads(result.output)
    var = cycle["var"]
    assert var["scenarios"] >= 30 and var["level"] == 0.99
    assert 0 < var["var_usd"] <= var["es_usd"]
    assert len(var["worst_days"]) == 3 and all(
        re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in var["worst_days"]
    )
    assert var["var_delta_gamma_vega_usd"] > 0  # the approximation beside the full revaluation
    assert {"implied", "realised", "vrp_ratio", "implied_vrp", "blend", "value", "source"} <= set(
        cycle["sigma"]
    )
    human = CliRunner().invoke(cli, ["once", "--config", str(config)])
    assert "1-day 99% VaR" in human.output and "worst days" in human.output
