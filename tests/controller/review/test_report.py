"""`levctl report`: files, figures that agree with SQL, empty and half-written logs, datasette queries."""

from __future__ import annotations

import itertools
import json
import math
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.journal import CycleRecord, Journal

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


def report_json(db: Path, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["report", "--db", str(db), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_report_writes_html_and_plots_per_run(run_log, tmp_path):
    result = CliRunner().invoke(cli, ["report", "--db", str(run_log), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r" / "report.html").read_text()
    # five plots for each of the two runs, and their equity side by side
    assert page.count("data:image/png;base64,") == 11 and "lv-" in page
    assert "Summary, one column per run" in page and "Run 1 — paper" in page and "Run 2 — dry-run" in page
    for run in (1, 2):
        for name in ("leverage", "volatility", "equity", "greeks", "margin"):
            png = tmp_path / "r" / f"run-{run}-{name}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert (tmp_path / "r" / "runs-equity.png").exists()


def test_each_run_is_summarised_on_its_own_and_agrees_with_sql(run_log):
    summaries = report_json(run_log)["runs"]
    assert [s["run"] for s in summaries] == [1, 2] and [s["mode"] for s in summaries] == ["paper", "dry-run"]
    for summary in summaries:
        run = summary["run"]
        assert summary["cycles"] == sql(run_log, "select count(*) from cycles where run_id = ?", run)[0][0]
        assert (
            summary["rebalances"]
            == sql(
                run_log,
                "select count(*) from cycles where run_id = ? and action in ('REBALANCE','REDUCE')",
                run,
            )[0][0]
        )
        inside, total = sql(
            run_log,
            "select sum(signed_leverage between band_low and band_high), count(*) from cycles "
            "where run_id = ? and action != 'ERROR' and band_low is not null",
            run,
        )[0]
        assert summary["share_in_band"] == pytest.approx(inside / total)
        equity = [
            r[0] for r in sql(run_log, "select equity_usd from cycles where run_id = ? order by id", run)
        ]
        peak, drawdown = equity[0], 0.0
        for value in equity:
            peak = max(peak, value)
            drawdown = max(drawdown, 1 - value / peak)
        assert summary["max_drawdown"] == pytest.approx(drawdown)
        assert summary["equity_start_usd"] == pytest.approx(equity[0])
        # the one estimator: sum of squared log returns over the time they took, annualised
        times = [
            datetime.fromisoformat(r[0]).timestamp()
            for r in sql(run_log, "select ts from cycles where run_id = ? order by id", run)
        ]
        r2 = sum(math.log(b / a) ** 2 for a, b in itertools.pairwise(equity))
        years = (times[-1] - times[0]) / (365 * 86400)
        assert summary["realised_vol_equity"] == pytest.approx(math.sqrt(r2 / years))
        assert summary["target_vol_equity"] == pytest.approx(0.6, rel=0.05)  # L* σ̂ = L_base σ_ref unclamped
    paper, dry = summaries
    filled = sql(run_log, "select sum(amount) from orders where status = 'filled' and run_id = 1")[0][0]
    assert paper["turnover_usd"] == pytest.approx(filled) and dry["turnover_usd"] == 0  # USD: inverse perp
    fees = sql(
        run_log,
        "select sum(o.fee_coin * c.index_price) from orders o join cycles c on c.id = o.cycle_id "
        "where o.status = 'filled'",
    )[0][0]
    assert paper["fees_usd"] == pytest.approx(fees)
    recommended = sql(run_log, "select count(*) from orders where status = 'recommended'")[0][0]
    assert dry["orders_recommended"] == recommended > 0 and paper["orders_recommended"] == 0


def test_advice_on_the_default_config_is_a_breach_episode_in_the_report(run_log, tmp_path):
    data = report_json(run_log)
    episodes = data["breaches"]
    assert episodes, "the default config records worst-scenario advice every cycle"
    worst = [e for e in episodes if e["breach"] == "worst scenario loss"]
    assert {e["run"] for e in worst} == {1, 2}
    first = worst[0]
    advised = sql(run_log, "select count(*) from cycles where run_id = 1 and advice like '%worst scenario%'")
    assert (
        first["cycles"] == advised[0][0]
        and first["ongoing"] is False
        and "exceeds the limit" in first["advice"]
    )
    assert data["runs"][0]["breaches"] == len([e for e in episodes if e["run"] == 1])
    CliRunner().invoke(cli, ["report", "--db", str(run_log), "--out", str(tmp_path / "r")])
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Advice and limit breaches" in page and "worst scenario loss" in page


def test_filters_by_run_and_by_instants(run_log, tmp_path):
    (one,) = report_json(run_log, "--run", "2")["runs"]
    assert one["cycles"] == 6 and one["orders_filled"] == 0
    # the first run's cycles are hourly from 2026-01-02 08:00 UTC; 10:30 at +02:00 is 08:30 UTC
    (first, *_) = report_json(
        run_log, "--since", "2026-01-02T10:30:00+02:00", "--until", "2026-01-02T12:00Z"
    )["runs"]
    assert first["start"] == "2026-01-02T09:00:00Z" and first["end"] == "2026-01-02T12:00:00Z"
    garbage = CliRunner().invoke(cli, ["report", "--db", str(run_log), "--since", "yesterday-ish"])
    assert garbage.exit_code == 2 and "not a time" in garbage.output and "Traceback" not in garbage.output


def test_a_run_that_is_not_there_is_an_error_and_overwrites_nothing(run_log, tmp_path):
    out = tmp_path / "r"
    assert CliRunner().invoke(cli, ["report", "--db", str(run_log), "--out", str(out)]).exit_code == 0
    before = (out / "report.html").read_bytes()
    missing = CliRunner().invoke(cli, ["report", "--db", str(run_log), "--out", str(out), "--run", "9"])
    assert (
        missing.exit_code == 1
        and missing.output.strip() == f"Error: {run_log} has no run 9 (it holds runs 1–2)"
    )
    assert (out / "report.html").read_bytes() == before


def test_empty_half_written_and_missing_logs_give_no_traceback(tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    half = tmp_path / "half.db"
    journal = Journal(half)
    journal.start_run(
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
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
        assert all(s["cycles"] == 0 for s in report_json(db)["runs"])
    missing = CliRunner().invoke(cli, ["report", "--db", str(tmp_path / "nope.db")])
    assert missing.exit_code == 1 and "no decision log" in missing.output


def _not_logs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("create table cycles (x)")
        conn.execute("create table customers (name)")
    folder = tmp_path / "folder"
    folder.mkdir()
    return {
        "text": (text, "is not a SQLite database"),
        "other": (other, "is not a levctl decision log (another program's database: customers, cycles)"),
        "folder": (folder, "is a directory"),
    }


@pytest.mark.parametrize("command", [["report", "--json"], ["report"], ["log"], ["log", "--json"]])
def test_log_and_report_on_what_is_not_a_decision_log_say_so_in_one_line(tmp_path, command):
    for path, words in _not_logs(tmp_path).values():
        result = CliRunner().invoke(cli, [*command, "--db", str(path)])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1 and words in lines[0], result.output


def test_a_replay_log_is_reported_per_run_with_the_comparison_first_and_a_bust_baseline_marked(tmp_path):
    """Three runs as a replay writes them; the fixed-leverage baseline's equity reaches zero."""
    db = tmp_path / "replay.db"
    journal = Journal(db)
    start = datetime(2026, 1, 2, 8, tzinfo=UTC)
    for role, path in (
        ("controller", [100.0, 101, 99, 102, 103]),
        ("fixed-leverage", [100.0, 60, 20, -5, -5]),
    ):
        run = journal.start_run(
            started_at=start,
            mode="paper",
            venue="sim",
            config_source="x",
            config_json="{}",
            config_sha256="x",
            version="x",
        )
        for n, equity in enumerate(path, start=1):
            row = {
                "run_id": run, "n": n, "ts": start + timedelta(hours=2 * n), "state": "ACTIVE", "action": "HOLD",
                "equity_usd": equity, "signed_leverage": 1.0, "target_leverage": 1.0, "band_low": 0.9,
                "band_high": 1.1, "sigma_hat": 0.6, "index_price": 90_000.0, "margin_ratio": 0.1, "advice": [],
            }  # fmt: skip
            journal.write_cycle(CycleRecord(row))
        journal.finish_run(run, finished_at=start, status="completed", reason="replayed")
        journal.record_replay(
            {"replay_key": "k", "run_id": run, "role": role, "book": "perpetual", "data_source": "x",
             "data_sha256": "x", "rows": 5, "first_ts": "", "last_ts": "", "gaps": [], "target_vol": 0.9,
             "ledger": {}}
        )  # fmt: skip
    journal.close()
    data = report_json(db)
    runs = {s["role"]: s for s in data["runs"]}
    assert runs["controller"]["went_bust"] is None and runs["controller"]["cycles"] == 5
    assert runs["fixed-leverage"]["went_bust"] == "2026-01-02T16:00:00Z"
    assert runs["fixed-leverage"]["realised_vol_equity"] is None  # no returns through zero
    assert [r["role"] for r in data["replays"]] == ["controller", "fixed-leverage"]
    result = CliRunner().invoke(cli, ["report", "--db", str(db), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r" / "report.html").read_text()
    assert page.index("Replays: the controller beside its baselines") < page.index(
        "Summary, one column per run"
    )
    assert "run 2 (fixed-leverage) WENT BUST at 2026-01-02T16:00:00Z" in page
    assert page.count("<td>100.0%</td>") >= 2  # time inside the band, as a percentage


def test_datasette_metadata_and_canned_queries_work_on_a_real_log(run_log):
    metadata = json.loads((ROOT / "review" / "datasette-metadata.json").read_text())
    database = metadata["databases"]["levctl"]
    columns = {r[1] for r in sql(run_log, "pragma table_info(cycles)")}
    assert set(database["tables"]["cycles"]["columns"]) <= columns  # every documented column exists
    for name, query in database["queries"].items():
        rows = sql(run_log, query["sql"])
        assert isinstance(rows, list), name
    assert sql(run_log, database["queries"]["rebalances"]["sql"])  # the run rebalanced at least once
