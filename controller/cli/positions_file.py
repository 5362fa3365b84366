"""Read a book of positions from CSV, for ``levctl book --positions FILE``.

Columns (header required): ``instrument, size, mark_price, underlying_price, mark_iv``.

* ``instrument`` – a Deribit name (``BTC-27SEP24-40000-C``, ``BTC-PERPETUAL`` …);
* ``size`` – signed: coin for options and linear contracts, USD for inverse perpetuals/futures;
* ``mark_price`` – coin per unit for coin-settled options (Deribit's quote), USD otherwise;
* ``underlying_price`` – the option's forward in USD (Deribit's ``underlying_price``); options only;
* ``mark_iv`` – percent, as Deribit publishes it (61.27); options only.

Every error names the file, line and column; a column of another name (a typo) and a file with no
rows are refused.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from pricing import InstrumentNameError, Position, parse_deribit_name

REQUIRED_COLUMNS = ("instrument", "size", "mark_price")
OPTION_COLUMNS = ("underlying_price", "mark_iv")
KNOWN_COLUMNS = (*REQUIRED_COLUMNS, *OPTION_COLUMNS)


class PositionsFileError(ValueError):
    """The positions file is missing, unreadable or holds a bad value."""


def read_positions(path: Path) -> list[Position]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise PositionsFileError(
                    f"{path}: missing column(s) {', '.join(missing)} (have: {', '.join(header)})"
                )
            unknown = [c for c in header if c not in KNOWN_COLUMNS]
            if unknown:
                raise PositionsFileError(
                    f"{path}: unknown column(s) {', '.join(repr(c) for c in unknown)} "
                    f"(known: {', '.join(KNOWN_COLUMNS)})"
                )
            reader.fieldnames = header
            positions = [_row_to_position(path, line, row) for line, row in enumerate(reader, start=2)]
    except UnicodeDecodeError as exc:
        raise PositionsFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise PositionsFileError(f"{path}: not a CSV file: {exc}") from None
    except OSError as exc:
        raise PositionsFileError(f"cannot read positions file {path}: {exc.strerror}") from exc
    if not positions:
        raise PositionsFileError(f"{path}: no positions (a header and no rows)")
    return positions


def _row_to_position(path: Path, line: int, row: dict[str, str]) -> Position:
    where = f"{path}:{line}"
    try:
        instrument = parse_deribit_name((row.get("instrument") or "").strip())
    except InstrumentNameError as exc:
        raise PositionsFileError(f"{where}: column instrument: {exc}") from exc
    size = _number(where, row, "size")
    mark_price = _number(where, row, "mark_price")
    if mark_price <= 0:
        raise PositionsFileError(f"{where}: column mark_price must be positive, got {mark_price:g}")
    if instrument.kind != "option":
        return Position(instrument, size, mark_price)
    forward = _number(where, row, "underlying_price")
    iv_percent = _number(where, row, "mark_iv")
    if forward <= 0:
        raise PositionsFileError(f"{where}: column underlying_price must be positive, got {forward}")
    if iv_percent < 1.0:
        raise PositionsFileError(
            f"{where}: column mark_iv is in percent (61.27 for 61.27 %), got {iv_percent}; "
            "a value below 1 looks like a decimal"
        )
    return Position(instrument, size, mark_price, underlying_price=forward, mark_iv=iv_percent / 100.0)


def _number(where: str, row: dict[str, str], column: str) -> float:
    raw = (row.get(column) or "").strip()
    if not raw:
        raise PositionsFileError(f"{where}: column {column} is empty")
    try:
        value = float(raw)
    except ValueError:
        raise PositionsFileError(f"{where}: column {column} is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise PositionsFileError(f"{where}: column {column} must be finite, got {raw!r}")
    return value
