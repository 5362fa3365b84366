"""Decisions are pinned: a replay of the real history decides and books what it did before.

The fixture ``pinned_decisions.json`` was written by this module (``python -m
tests.controller.replay.test_pinned_decisions --write``) from the code *before* the speed work of
issue 14, and is not rewritten by it.  For both reference books, every cycle's action, signed
leverage, target and band, every order, and the simulator's ledger at the end must agree to 1e-9
relative; the liquidation move beside them (a root search that issue 14 replaces) to 1e-8.

The books are replayed with the σ̂ and band they had when the fixture was written (``PINNED``: the
smoothed implied vol, a ±15 % band): later defaults (issue 13 chose realised volatility and a
±30 % band for the perpetual book) change what the controller decides on purpose, and this test
pins the code, not the defaults.
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.config import Config, build_config, load_config
from controller.replay.run import replay
from controller.sim.market import load_replay_csv
from tests.conftest import require_shared_file

FIXTURE = Path(__file__).with_name("pinned_decisions.json")
HISTORY = "btc_2h_dvol_funding.csv"
BOOKS = {"perpetual": 2000, "straddle": 1000}  # rows of the real history replayed per book
ACTIONS = {"HOLD": ".", "REBALANCE": "R", "REDUCE": "r", "HALT": "H", "ERROR": "E"}
DECISION_COLUMNS = ("signed_leverage", "target_leverage", "band_low", "band_high")
PINNED = {"risk": {"sigma_estimator": "implied"}, "policy": {"band": 0.15}}  # when the fixture was written
DIGITS = 11  # significant digits kept: a rounding of at most 5e-11, far inside the 1e-9 compared


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.{DIGITS}g}")


def pinned_config(book: str) -> Config:
    """The book's embedded config with the σ̂ of the fixture's time."""
    raw = load_config(None, embedded=f"replay-{book}.toml").file.model_dump(mode="json")
    for section, values in PINNED.items():
        raw[section].update(values)
    return build_config(raw, source=f"replay-{book}.toml (pinned σ̂)")


def record(book: str, rows: int, db: Path) -> dict[str, Any]:
    """Replay ``rows`` rows with the controller only and read back what the journal holds."""
    history = load_replay_csv(require_shared_file(HISTORY)).head(rows)
    config = pinned_config(book)
    run = replay(config, history, db, roles=("controller",)).runs[0]
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        cycles = list(conn.execute("select * from cycles where run_id = ? order by n", [run.run_id]))
        orders = conn.execute(
            "select c.n, o.side, o.amount, o.status, o.filled_amount, o.avg_price "
            "from orders o join cycles c on c.id = o.cycle_id where o.run_id = ? order by o.id",
            [run.run_id],
        ).fetchall()
    return {
        "rows": rows,
        "actions": "".join(ACTIONS[c["action"]] for c in cycles),
        "cycles": {k: [_rounded(c[k]) for c in cycles] for k in DECISION_COLUMNS},
        # beside the decisions, the one risk figure whose search issue 14 replaces (9 digits suffice)
        "liquidation_move": [
            None if c["liquidation_move"] is None else round(c["liquidation_move"], 9) for c in cycles
        ],
        "orders": [
            [n, side, _rounded(a), status, _rounded(f), _rounded(p)] for n, side, a, status, f, p in orders
        ],
        "ledger": {k: _rounded(v) for k, v in sorted(run.ledger.items())},
    }


def _close(a: float | None, b: float | None, *, rel: float, abs_: float) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _mismatches(name: str, got: list, want: list, *, rel: float, abs_: float) -> list[str]:
    if len(got) != len(want):
        return [f"{name}: {len(got)} values, pinned {len(want)}"]
    return [
        f"{name}[cycle {i + 1}]: {g!r}, pinned {w!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True))
        if not _close(g, w, rel=rel, abs_=abs_)
    ]


@pytest.mark.parametrize("book", sorted(BOOKS))
def test_a_replay_of_the_real_history_decides_as_pinned(book: str, tmp_path: Path) -> None:
    pinned = json.loads(FIXTURE.read_text())[book]
    got = record(book, pinned["rows"], tmp_path / "pin.db")

    assert got["actions"] == pinned["actions"]
    wrong = []
    for column in DECISION_COLUMNS:
        wrong += _mismatches(column, got["cycles"][column], pinned["cycles"][column], rel=1e-9, abs_=1e-12)
    # a root search: pinned to 1e-8 of a move, well inside the 1e-6 its bracket is shrunk to
    wrong += _mismatches(
        "liquidation_move", got["liquidation_move"], pinned["liquidation_move"], rel=0, abs_=1e-8
    )
    assert not wrong, "\n".join(wrong[:20])

    assert len(got["orders"]) == len(pinned["orders"])
    for g, w in zip(got["orders"], pinned["orders"], strict=True):
        assert g[:2] == w[:2] and g[3] == w[3], (g, w)  # cycle, side, status
        assert all(_close(x, y, rel=1e-9, abs_=1e-12) for x, y in zip(g[2::2], w[2::2], strict=True)), (g, w)
        assert _close(g[5], w[5], rel=1e-9, abs_=1e-12), (g, w)

    assert got["ledger"].keys() == pinned["ledger"].keys()
    for key, value in pinned["ledger"].items():
        assert _close(got["ledger"][key], value, rel=1e-9, abs_=1e-12), (key, got["ledger"][key], value)


def test_the_pinned_replays_trade_and_hold() -> None:
    """The fixture is worth pinning: both books rebalance and hold; the straddle book has a liquidation point."""
    pinned = json.loads(FIXTURE.read_text())
    for book, rows in BOOKS.items():
        assert pinned[book]["rows"] == rows and len(pinned[book]["actions"]) == rows
        assert pinned[book]["actions"].count("R") >= 5 and pinned[book]["actions"].count(".") >= rows // 2
        assert len(pinned[book]["orders"]) == pinned[book]["actions"].count("R")
    moves = pinned["straddle"]["liquidation_move"]
    assert sum(m is not None and -0.99 < m < 0 for m in moves) > len(moves) // 2


def main(argv: list[str]) -> int:
    """Write the fixture from the code as it is (only ever before a change that must not alter it)."""
    import tempfile

    if argv != ["--write"]:
        print("usage: python -m tests.controller.replay.test_pinned_decisions --write", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        pinned = {book: record(book, rows, Path(tmp) / f"{book}.db") for book, rows in BOOKS.items()}
    FIXTURE.write_text(json.dumps(pinned, separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
