"""Market history for replays: the real file, and bad files with clear messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.sim import SimConfig, SimExchange
from controller.sim.market import ReplayError, ReplayPath, load_replay_csv
from tests.conftest import require_shared_file

HEADER = "timestamp_ms,time_utc,btc_usd,dvol,funding_rate_8h\n"


def write(tmp_path, rows: list[str], header: str = HEADER):
    path = tmp_path / "history.csv"
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


def row(hour: int, price: float = 50_000.0, dvol: float = 60.0, funding: float = 0.0001) -> str:
    ms = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000) + hour * 3_600_000
    return f"{ms},x,{price},{dvol},{funding}"


def test_the_real_history_loads_with_its_gaps_reported():
    data = load_replay_csv(require_shared_file("btc_2h_dvol_funding.csv"))
    assert len(data.times_ms) == 18_782
    assert data.start == datetime(2021, 3, 24, 2, tzinfo=UTC)
    assert data.end == datetime(2025, 8, 26, 12, tzinfo=UTC)
    assert 30 <= len(data.gaps) <= 80  # "about 50 gaps of one day"
    assert all(timedelta(hours=4) < end - start for start, end in data.gaps)
    assert 55 < data.vol_index_pct.mean() < 75


def test_replay_drives_the_engine(tmp_path):
    path = write(tmp_path, [row(0, 50_000, 60), row(2, 51_000, 70), row(4, 49_000, 65)])
    engine = SimExchange(SimConfig(), path=ReplayPath(load_replay_csv(path)))
    assert engine.market().index == 50_000 and engine.market().atm_vol == pytest.approx(0.60)
    engine.advance(3 * 3600)
    assert engine.market().index == 51_000 and engine.market().atm_vol == pytest.approx(0.70)
    engine.advance(3600)
    assert engine.market().index == 49_000


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        ([row(0), row(2)], "timestamp_ms,btc_usd,dvol\n", "missing column(s) funding_rate_8h"),
        ([row(2), row(0)], HEADER, ":3: timestamp_ms does not increase"),
        ([row(0), row(0)], HEADER, ":3: timestamp_ms does not increase"),
        ([row(0), row(2, price=float("nan"))], HEADER, ":3: column btc_usd is 'nan'"),
        ([row(0), row(2).replace(",60.0,", ",abc,")], HEADER, ":3: column dvol is not a number: 'abc'"),
        ([row(0), row(2, price=-1.0)], HEADER, ":3: column btc_usd must be positive"),
        ([row(0)], HEADER, "at least two rows"),
    ],
)
def test_bad_history_files_are_named_clearly(tmp_path, rows, header, message):
    path = write(tmp_path, rows, header)
    with pytest.raises(ReplayError) as caught:
        load_replay_csv(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_gaps_are_reported_not_filled(tmp_path):
    path = write(tmp_path, [row(0), row(2), row(4), row(30), row(32)])
    data = load_replay_csv(path)
    assert len(data.times_ms) == 5
    assert [(b - a) for a, b in data.gaps] == [timedelta(hours=26)]


def test_missing_file(tmp_path):
    with pytest.raises(ReplayError, match="cannot read market history"):
        load_replay_csv(tmp_path / "absent.csv")


def _brute_force_candle(engine: SimExchange, start: datetime, step: timedelta) -> list[float]:
    """A candle the slow way: the vol at the start and at every change of the path inside it."""
    end = min(start + step, engine.now)
    times, t = [start], start
    while (t := engine.path.next_change_after(t) or end) < end:
        times.append(t)
    vols = [round(engine.vol_at(x) * 100.0, 6) for x in times]
    return [int(start.timestamp() * 1000), vols[0], max(vols), min(vols), vols[-1]]


@pytest.mark.parametrize(
    "resolution, hours, minutes",
    [("1", 1, 7), ("60", 12, 7), ("3600", 30, 7), ("60", 1, 0), ("3600", 4, 0), ("60", 5, 59), ("1D", 80, 3)],
)
def test_volatility_candles_match_the_path_candle_by_candle(resolution, hours, minutes):
    """get_volatility_index_data's candles, read once per change of the path, equal the candles
    read point by point — on the real history (2-hour steps) and on the stochastic path (minutes)."""
    from controller.sim.deribit_api import DeribitApi

    replayed = SimExchange(
        SimConfig(), path=ReplayPath(load_replay_csv(require_shared_file("btc_2h_dvol_funding.csv")))
    )
    stochastic = SimExchange(SimConfig())
    for engine in (replayed, stochastic):
        engine.advance_to(engine.now + timedelta(hours=hours + 3, minutes=minutes))  # 0: a row starts now
        end = engine.now
        start = end - timedelta(hours=hours)
        reply = DeribitApi(engine).call(
            "public/get_volatility_index_data",
            {
                "currency": "BTC",
                "resolution": resolution,
                "start_timestamp": int(start.timestamp() * 1000),
                "end_timestamp": int(end.timestamp() * 1000),
            },
        )
        step = timedelta(seconds=int(resolution) if resolution != "1D" else 86400)
        assert reply["data"], "no candles"
        for row in reply["data"]:
            candle_start = datetime.fromtimestamp(row[0] / 1000, UTC)
            assert row == _brute_force_candle(engine, candle_start, step)
        assert len({row[4] for row in reply["data"]}) > 1 or engine is replayed  # the stochastic vol moves
