"""Several replay CSVs aligned on their common timestamps: the real BTC and ETH files, and the errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from controller.replay.joint_data import (
    JointReplayError,
    align,
    currency_of,
    load_joint_replay,
    parse_data_argument,
)
from controller.risk.correlation import correlation_by_pair, covariance_ewma
from controller.sim.market import ReplayError, load_replay_csv
from tests.conftest import require_shared_file

START_MS = 1_700_006_400_000  # on the 2-hour grid
STEP_MS = 7_200_000
BTC_FILE, ETH_FILE = "btc_2h_dvol_funding.csv", "eth_2h_dvol_2021-2022.csv"


def write(path: Path, steps, prices, column="index_usd") -> Path:
    lines = [f"timestamp_ms,time_utc,{column},dvol,funding_rate_8h"]
    for step, price in zip(steps, prices, strict=True):
        ms = START_MS + step * STEP_MS
        stamp = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{ms},{stamp},{price},60.0,0.0001")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_histories_are_restricted_to_their_common_times(tmp_path):
    btc = write(tmp_path / "btc.csv", range(10), [100 + i for i in range(10)], column="btc_usd")
    eth = write(tmp_path / "eth_2h.csv", [2, 3, 4, 7, 8, 9, 10, 11, 12], [10 + i for i in range(9)])
    joint = load_joint_replay([btc, eth])
    assert joint.currencies == ("BTC", "ETH")
    steps = [2, 3, 4, 7, 8, 9]
    assert joint.times_ms.tolist() == [START_MS + s * STEP_MS for s in steps]
    assert joint.data["BTC"].prices.tolist() == [100.0 + s for s in steps]
    assert joint.data["ETH"].prices.tolist() == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    assert np.array_equal(joint.data["BTC"].times_ms, joint.data["ETH"].times_ms)
    assert joint.dropped_rows == {"BTC": 4, "ETH": 3}
    gap = (
        datetime.fromtimestamp((START_MS + 4 * STEP_MS) / 1000, UTC),
        datetime.fromtimestamp((START_MS + 7 * STEP_MS) / 1000, UTC),
    )
    assert joint.gaps == (gap,) and joint.data["ETH"].gaps == (gap,)  # steps 5 and 6 are missing from ETH


def test_currencies_come_from_the_price_column_the_name_or_the_caller(tmp_path):
    btc = write(tmp_path / "history.csv", range(3), [1, 2, 3], column="btc_usd")
    sol = write(tmp_path / "sol-2h.csv", range(3), [1, 2, 3])
    assert currency_of(btc) == "BTC" and currency_of(sol) == "SOL"
    assert parse_data_argument("ETH=data/x.csv") == ("ETH", Path("data/x.csv"))
    assert parse_data_argument("data/eth.csv") == (None, Path("data/eth.csv"))
    joint = load_joint_replay([("ETH", sol), (None, btc)])
    assert joint.currencies == ("ETH", "BTC")
    with pytest.raises(JointReplayError, match="given as ETH but its price column is btc_usd"):
        load_joint_replay([("ETH", btc), ("BTC", sol)])
    with pytest.raises(JointReplayError, match="cannot tell its currency"):
        currency_of(write(tmp_path / "2h.csv", range(3), [1, 2, 3]))


def test_a_currency_twice_is_refused_naming_both_files(tmp_path):
    a = write(tmp_path / "eth_a.csv", range(3), [1, 2, 3])
    b = write(tmp_path / "eth_b.csv", range(3), [1, 2, 3])
    with pytest.raises(JointReplayError, match=r"eth_b\.csv: ETH is already given by .*eth_a\.csv"):
        load_joint_replay([a, b])


def test_histories_without_two_common_times_are_refused(tmp_path):
    btc = write(tmp_path / "btc.csv", range(5), [1, 2, 3, 4, 5], column="btc_usd")
    eth = write(tmp_path / "eth.csv", range(4, 9), [1, 2, 3, 4, 5])
    with pytest.raises(
        JointReplayError, match=r"share 1 timestamp\(s\), need two: .*btc\.csv .*eth\.csv"
    ) as err:
        load_joint_replay([btc, eth])
    assert isinstance(err.value, ReplayError) and isinstance(err.value, ValueError)
    with pytest.raises(JointReplayError, match="no market history"):
        align({})
    with pytest.raises(JointReplayError, match="cannot read"):
        load_joint_replay([tmp_path / "missing_eth.csv"])


def test_the_real_btc_and_eth_files_share_march_2021_to_june_2022():
    joint = load_joint_replay([require_shared_file(BTC_FILE), require_shared_file(ETH_FILE)])
    assert joint.currencies == ("BTC", "ETH")
    assert (joint.start.year, joint.start.month) == (2021, 3)
    assert (joint.end.year, joint.end.month) == (2022, 6)
    eth = load_replay_csv(require_shared_file(ETH_FILE))
    assert joint.times_ms.size == eth.times_ms.size  # every ETH row is on a BTC timestamp
    assert joint.dropped_rows["ETH"] == 0 and joint.dropped_rows["BTC"] > 10_000
    assert np.array_equal(joint.data["ETH"].prices, eth.prices)


def _correlation(joint, start=None, end=None):
    t = joint.times_ms / 1000.0
    keep = np.ones(t.size, dtype=bool)
    if start:
        keep &= t >= datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp()
    if end:
        keep &= t < datetime.fromisoformat(end).replace(tzinfo=UTC).timestamp()
    state = covariance_ewma(
        times_s={c: t[keep] for c in joint.currencies},
        prices={c: d.prices[keep] for c, d in joint.data.items()},
        half_life_s=math.inf,
    )
    return correlation_by_pair(state)["BTC/ETH"]


def test_btc_and_eth_two_hour_returns_are_highly_correlated_and_more_so_in_crashes():
    """Measured on the files: 0.869 over the whole window; 0.93 in the LUNA week (5–12 May 2022)
    and 0.93 in the Celsius/3AC week (10–16 June 2022)."""
    joint = load_joint_replay([require_shared_file(BTC_FILE), require_shared_file(ETH_FILE)])
    whole = _correlation(joint)
    assert whole == pytest.approx(0.869, abs=0.001)
    for start, end in (("2022-05-05", "2022-05-13"), ("2022-06-10", "2022-06-17")):
        assert _correlation(joint, start, end) > whole + 0.05
