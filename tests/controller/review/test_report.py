"""`levctl report`: files, figures that agree with SQL, empty and half-written logs, datasette queries."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.journal import Journal

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def run_log(tmp_path_factory):
    """The decision log of an end-to-end run of the embedded default."""
    home = tmp_path_factory.mktemp("report")
    runner = CliRunner()
    previous = os.getcwd()
    os.chdir(home)
    try:
        assert runner.invoke(cli, ["run", "--cycles", "24"]).exit_code == 0
        assert runner.invoke(cli, ["run", "--cycles", "6", "--dry-run"]).exit_code == 0
    finally:
        os.chdir(previous)
    return home / "logs" / "levctl.db"


def sql(db: Path, query: str, *args):
    with sqlite3.connect(db) as conn:
        return conn.execute(query, args).fetchall()


def test_report_writes_html_and_plots(run_log, tmp_path):
    result = CliRunner().invoke(cli, ["report", "--db", str(run_log), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "Summary" in page and "lv-" in page
    for name in ("leverage", "volatility", "equity", "greeks", "margin"):
        png = tmp_path / "r" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_summary_agrees_with_sql_over_the_log(run_log):
    summary = json.loads(CliRunner().invoke(cli, ["report", "--db", str(run_log), "--json"]).output)
    assert summary["cycles"] == sql(run_log, "select count(*) from cycles")[0][0] == 30
    assert summary["runs"] == 2
    assert (
        summary["rebalances"]
        == sql(run_log, "select count(*) from cycles where action in ('REBALANCE','REDUCE')")[0][0]
    )
    inside, total = sql(
        run_log,
        "select sum(signed_leverage between band_low and band_high), count(*) from cycles "
        "where action != 'ERROR' and band_low is not null",
    )[0]
    assert summary["share_in_band"] == pytest.approx(inside / total)
    filled = sql(run_log, "select sum(amount) from orders where status = 'filled'")[0][
        0
    ]  # USD: an inverse perpetual
    assert summary["turnover_usd"] == pytest.approx(filled)
    fees = sql(
        run_log,
        "select sum(o.fee_coin * c.index_price) from orders o join cycles c on c.id = o.cycle_id "
        "where o.status = 'filled'",
    )[0][0]
    assert summary["fees_usd"] == pytest.approx(fees)
    assert (
        summary["orders_recommended"]
        == sql(run_log, "select count(*) from orders where status = 'recommended'")[0][0]
        > 0
    )
    equity = [r[0] for r in sql(run_log, "select equity_usd from cycles order by id")]
    peak, drawdown = equity[0], 0.0
    for value in equity:
        peak = max(peak, value)
        drawdown = max(drawdown, 1 - value / peak)
    assert summary["max_drawdown"] == pytest.approx(drawdown)
    assert summary["target_vol_equity"] == pytest.approx(0.6, rel=0.05)  # L* σ̂ = L_base σ_ref when unclamped


def test_filters_by_run(run_log):
    one = json.loads(CliRunner().invoke(cli, ["report", "--db", str(run_log), "--json", "--run", "2"]).output)
    assert one["cycles"] == 6 and one["orders_filled"] == 0


def test_empty_half_written_and_missing_logs_give_no_traceback(tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    half = tmp_path / "half.db"
    journal = Journal(half)
    journal.start_run(
        started_at=__import__("datetime").datetime(2026, 1, 1),
        mode="paper",
        venue="sim",
        config_source="x",
        config_json="{}",
        config_sha256="x",
        version="x",
    )
    journal.close()
    for db in (empty, half):
        result = CliRunner().invoke(cli, ["report", "--db", str(db), "--out", str(tmp_path / db.stem)])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        assert "no cycles yet" in (tmp_path / db.stem / "report.html").read_text()
        assert (
            json.loads(CliRunner().invoke(cli, ["report", "--db", str(db), "--json"]).output)["cycles"] == 0
        )
    missing = CliRunner().invoke(cli, ["report", "--db", str(tmp_path / "nope.db")])
    assert missing.exit_code == 1 and "no decision log" in missing.output


def test_datasette_metadata_and_canned_queries_work_on_a_real_log(run_log):
    metadata = json.loads((ROOT / "review" / "datasette-metadata.json").read_text())
    database = metadata["databases"]["levctl"]
    columns = {r[1] for r in sql(run_log, "pragma table_info(cycles)")}
    assert set(database["tables"]["cycles"]["columns"]) <= columns  # every documented column exists
    for name, query in database["queries"].items():
        rows = sql(run_log, query["sql"])
        assert isinstance(rows, list), name
    assert sql(run_log, database["queries"]["rebalances"]["sql"])  # the run rebalanced at least once
