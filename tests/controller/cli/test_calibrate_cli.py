"""levctl calibrate at the command line: JSON of the issue's shape, a ready config, one line per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.config import load_config
from tests.controller.replay.histories import write_history

SPACE = "[calibrate]\nstress = []\n[calibrate.space]\npolicy.band = { low = 0.05, high = 0.4 }\n"


def config_file(tmp_path: Path, text: str = SPACE) -> Path:
    base = (Path(__file__).resolve().parents[3] / "config" / "replay-perpetual.toml").read_text()
    path = tmp_path / "c.toml"
    path.write_text(base + "\n" + text)
    return path


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_json_has_the_issues_shape_and_the_written_config_is_ready(tmp_path: Path) -> None:
    data = write_history(tmp_path / "h.csv", days=130, step_h=6, seed=8)
    out = tmp_path / "best.toml"
    result = invoke(
        "calibrate",
        "--data",
        str(data),
        "--config",
        str(config_file(tmp_path)),
        "--trials",
        "2",
        "--folds",
        "1",
        "--db",
        str(tmp_path / "cal.db"),
        "--json",
        "--quiet",
        "--write-config",
        str(out),
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"best", "walk_forward", "trials", "engine"} and doc["engine"] == "local"
    assert set(doc["best"]) == {"params", "objective"} and set(doc["best"]["params"]) == {"policy.band"}
    (fold,) = doc["walk_forward"]
    assert set(fold) == {"train", "test", "params", "in_sample", "out_of_sample"}
    assert fold["train"][1] == fold["test"][0]
    assert set(fold["out_of_sample"]) == {
        "tracking_error",
        "vol_ratio",
        "vol_of_vol",
        "trades_per_year",
        "max_drawdown",
    }
    assert all(isinstance(v, float) for v in fold["out_of_sample"].values())
    assert len(doc["trials"]) == 4 and {t["study"] for t in doc["trials"]} == {"fold-1", "final"}
    written = load_config(out)  # a ready config: it loads, and it is the base with the best band
    base = load_config(config_file(tmp_path))
    assert written.policy.band == pytest.approx(doc["best"]["params"]["policy.band"], rel=1e-3)
    assert written.file.risk == base.file.risk and written.policy.base_leverage == base.policy.base_leverage
    text = out.read_text()
    assert (
        text.startswith("# Written by levctl calibrate")
        and f"# calibrated (configured: {base.policy.band:g})" in text
    )


@pytest.mark.slow
def test_the_table_and_the_page(tmp_path: Path) -> None:
    data = write_history(tmp_path / "h.csv", days=70, step_h=6, seed=8)
    result = invoke(
        "calibrate",
        "--data",
        str(data),
        "--config",
        str(config_file(tmp_path)),
        "--trials",
        "5",
        "--folds",
        "0",
        "--db",
        str(tmp_path / "cal.db"),
        "--out",
        str(tmp_path / "page"),
    )
    assert result.exit_code == 0, result.output
    assert "best parameters on all the data" in result.stdout and "policy.band" in result.stdout
    page = (tmp_path / "page" / "calibration.html").read_text()
    assert "<h2>optimisation history</h2>" in page and "Best parameters (final study" in page
    assert "5 trials in 1 studies" in result.stderr


BAD = [
    (
        '[calibrate.space]\n"policy.bandwidth" = { low = 0.1, high = 0.2 }\n',
        [],
        "calibrate.space.policy.bandwidth: unknown parameter",
    ),
    ("[calibrate.space]\npolicy.base_leverage = { low = 1.0, high = 2.0 }\n", [], "not calibrable"),
    ("[calibrate.space]\npolicy.band = { low = 0.1, high = 1.5 }\n", [], "1.5 is not a valid policy.band"),
    ("[calibrate]\nstart = 2031-01-01T00:00:00Z\n", [], "an empty window"),
    ("[calibrate]\nstress = []\n", ["--folds", "9"], "9 folds is more than"),
    ("[calibrate]\nstress = []\n", ["--trials", "0"], "--trials must be at least 1"),
]


@pytest.mark.parametrize(("toml", "args", "message"), BAD)
def test_bad_input_is_one_clear_line(tmp_path: Path, toml: str, args: list[str], message: str) -> None:
    data = write_history(tmp_path / "h.csv", days=120, step_h=12)
    result = invoke(
        "calibrate",
        "--data",
        str(data),
        "--config",
        str(config_file(tmp_path, toml)),
        "--db",
        str(tmp_path / "cal.db"),
        "--quiet",
        *args,
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_workers_and_a_dask_scheduler_together_are_refused(tmp_path: Path) -> None:
    data = write_history(tmp_path / "h.csv", days=120, step_h=12)
    result = invoke(
        "calibrate", "--data", str(data), "--workers", "2", "--dask-scheduler", "tcp://127.0.0.1:1"
    )
    assert result.exit_code == 2 and "not both" in result.stderr


def test_a_study_file_of_other_data_is_refused(tmp_path: Path) -> None:
    import optuna

    db = tmp_path / "cal.db"
    study = optuna.create_study(study_name="final", storage=f"sqlite:///{db}")
    study.set_user_attr("fingerprint", "made-elsewhere")
    data = write_history(tmp_path / "h.csv", days=120, step_h=12)
    result = invoke(
        "calibrate",
        "--data",
        str(data),
        "--config",
        str(config_file(tmp_path)),
        "--folds",
        "0",
        "--db",
        str(db),
        "--quiet",
    )
    assert result.exit_code == 1 and "made for other data or settings" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
