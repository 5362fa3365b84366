"""Shared fixtures: the real market data in ../shared/data.

Tests that need the data skip with a clear reason when the folder is absent (a user's clone);
with ``LEVCTL_REQUIRE_SHARED_DATA=1`` (CI) they fail instead.  ``LEVCTL_SHARED_DATA`` points
elsewhere if the data lives in another place.
"""

from __future__ import annotations

import ast
import csv
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from controller.venues import ChainQuote
from pricing import Option, parse_deribit_name

REPO_ROOT = Path(__file__).resolve().parent.parent
CHAIN_FILE = "deribit_btc_chain_2020-05-14.csv"


def shared_data_dir() -> Path:
    return Path(os.environ.get("LEVCTL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def require_shared_file(name: str) -> Path:
    path = shared_data_dir() / name
    if path.is_file():
        return path
    message = f"shared data file {path} not found (set LEVCTL_SHARED_DATA to its folder)"
    if os.environ.get("LEVCTL_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(message + " and LEVCTL_REQUIRE_SHARED_DATA=1 makes it required")
    pytest.skip(message)


@dataclass(frozen=True)
class Chain:
    """The captured Deribit chain as arrays (one element per option)."""

    name: np.ndarray
    forward: np.ndarray  # underlying_price, USD
    index: np.ndarray  # index_price, USD
    strike: np.ndarray
    t_years: np.ndarray  # ACT/365 from each quote's own timestamp to expiry
    is_call: np.ndarray
    mark_price_btc: np.ndarray
    mark_iv: np.ndarray  # decimal
    timestamp_ms: np.ndarray
    deribit: dict[str, np.ndarray]  # delta, gamma, vega, theta as Deribit published them

    def __len__(self) -> int:
        return len(self.name)

    def chain_quotes(self, as_of: datetime) -> list[ChainQuote]:
        """The chain as the venue protocol's option-chain summary, observed at ``as_of``."""
        quotes = []
        for i in range(len(self)):
            inst = parse_deribit_name(str(self.name[i]))
            assert isinstance(inst, Option)
            quotes.append(
                ChainQuote(
                    inst.name,
                    inst.expiry,
                    inst.strike,
                    inst.is_call,
                    float(self.forward[i]),
                    float(self.mark_iv[i]),
                    float(self.mark_price_btc[i]),
                    as_of,
                )
            )
        return quotes


@pytest.fixture(scope="session")
def chain() -> Chain:
    path = require_shared_file(CHAIN_FILE)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    expiry = np.array([float(r["expiration_timestamp"]) for r in rows])
    stamp = np.array([float(r["timestamp"]) for r in rows])
    published = [ast.literal_eval(r["greeks"]) for r in rows]
    return Chain(
        name=np.array([r["instrument_name"] for r in rows]),
        forward=np.array([float(r["underlying_price"]) for r in rows]),
        index=np.array([float(r["index_price"]) for r in rows]),
        strike=np.array([float(r["strike"]) for r in rows]),
        t_years=(expiry - stamp) / 1000.0 / (365.0 * 86400.0),
        is_call=np.array([r["option_type"] == "call" for r in rows]),
        mark_price_btc=np.array([float(r["mark_price"]) for r in rows]),
        mark_iv=np.array([float(r["mark_iv"]) for r in rows]) / 100.0,
        timestamp_ms=stamp,
        deribit={k: np.array([float(g[k]) for g in published]) for k in ("delta", "gamma", "vega", "theta")},
    )
