"""Reports from a decision log: the data in scope, and a summary per run.

Read-only and tolerant: an empty or half-written log (a run that died before its first cycle, a
database with no tables yet) gives an empty summary and a page that says so — never a traceback.
A log holds several runs (every replay writes three: the controller and two baselines); each is
summarised, and plotted (:mod:`.plots`), on its own.  Figures of one run:

* share of time inside the band: cycles whose signed leverage lay within ``[band_low, band_high]``;
* turnover: the USD notional of filled orders; fees: their fees in coin, at the cycle's index;
* maximum drawdown, and realised volatility of equity (``Σ r² / Σ Δt``, the product's one estimator,
  :func:`pricing.realised.realised_vol`) against the target ``median(L* · σ̂)`` — the volatility that
  volatility targeting aims the equity at;
* went bust: the first cycle whose equity was at or below zero, or a halt on the account's equity.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from controller.review.breaches import GUARD_WORDS, BreachTracker, Episode
from controller.review.logdb import LogReadError, is_log, open_log, time_filters
from pricing.realised import realised_vol

CYCLE_NUMBERS = (
    "equity_usd",
    "index_price",
    "sigma_hat",
    "signed_leverage",
    "target_leverage",
    "band_low",
    "band_high",
    "delta_usd",
    "dollar_gamma_usd",
    "vega_usd",
    "theta_usd",
    "margin_ratio",
    "worst_scenario_loss_usd",
)
# a portfolio's book figures (schema 6; NULL in older logs), the same on every currency's row of a cycle
BOOK_NUMBERS = (
    "portfolio_equity_usd",
    "portfolio_leverage",
    "risk_leverage",
    "book_vol_usd",
    "portfolio_var_usd",
    "portfolio_es_usd",
    "cascade_loss_usd",
    "cascade_distance",
    "portfolio_worst_scenario_usd",
)
BOOK_TARGET = "json_extract(portfolio, '$.target_vol')"  # the target of σ_book / E
NUMBERS = (*CYCLE_NUMBERS, *BOOK_NUMBERS, "book_target_vol")
BOOK = "book"  # a portfolio run's whole book, beside its currencies
KEYS = 8  # id, run_id, n, t, good, rebalance, trip, currency: the query's columns before the numbers
# epoch seconds, to SQLite's millisecond; a trip: halted, reducing, or a guard's words in the reason
_GUARD_TRIP = " or ".join(
    ["action = 'HALT'", "state = 'REDUCING'", *(f"coalesce(reason, '') like '%{w}%'" for w in GUARD_WORDS)]
)
_CYCLE_QUERY = (
    "select id, run_id, n, round((julianday(ts) - 2440587.5) * 86400000.0) / 1000.0, "
    "action != 'ERROR' and equity_usd is not null, action in ('REBALANCE', 'REDUCE'), "
    f"coalesce({_GUARD_TRIP}, 0), {{currency}}, {{numbers}} from cycles {{where}} order by id"
)
CHUNK_ROWS = 20_000  # rows turned into arrays at a time: the log never sits in memory as Python objects
LAST_ROWS = 500  # rows of the page's tables (orders, guard trips, events)


@dataclass(frozen=True)
class CycleColumns:
    """The cycles in scope as arrays (NULL is NaN), in log order: what the summary and plots read."""

    id: np.ndarray
    run_id: np.ndarray
    n: np.ndarray  # the run's cycle number: a portfolio writes one row per currency with the same n
    t_s: np.ndarray  # epoch seconds
    good: np.ndarray  # neither failed nor without equity
    rebalance: np.ndarray  # REBALANCE or REDUCE
    guard_trip: np.ndarray
    currency: np.ndarray  # index into ``currencies``; -1 when the row names none
    numbers: dict[str, np.ndarray]
    currencies: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.id.size)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.numbers[name]

    @staticmethod
    def empty() -> CycleColumns:
        return CycleColumns.of(np.empty((0, KEYS + len(NUMBERS))))

    @staticmethod
    def of(table: np.ndarray, currencies: tuple[str, ...] = ()) -> CycleColumns:
        """``table``: the query's columns; the book's figures may be left out (a log of one currency)."""
        ids, runs, n, times, good, rebalance, trip, currency = table[:, :KEYS].T
        numbers = dict(zip(NUMBERS, table[:, KEYS:].T, strict=False))
        missing = np.full(len(table), np.nan)
        return CycleColumns(
            ids.astype(np.int64),
            runs.astype(np.int64),
            np.nan_to_num(n, nan=-1.0).astype(np.int64),
            times,
            good == 1,
            rebalance == 1,
            trip == 1,
            np.nan_to_num(currency, nan=-1.0).astype(np.int64),
            {k: numbers.get(k, missing) for k in NUMBERS},
            currencies,
        )

    def where(self, keep: np.ndarray) -> CycleColumns:
        """The rows where ``keep`` is true (these columns themselves when it is everywhere)."""
        if keep.all():
            return self
        return CycleColumns(
            self.id[keep],
            self.run_id[keep],
            self.n[keep],
            self.t_s[keep],
            self.good[keep],
            self.rebalance[keep],
            self.guard_trip[keep],
            self.currency[keep],
            {k: v[keep] for k, v in self.numbers.items()},
            self.currencies,
        )

    def of_run(self, run_id: int) -> CycleColumns:
        return self.where(self.run_id == run_id)

    def of_currency(self, name: str) -> CycleColumns:
        return self.where(self.currency == self.currencies.index(name))

    def cycle_starts(self) -> np.ndarray:
        """The index of each cycle's first row (a portfolio's currencies' rows of a cycle share ``n``)."""
        changed = (self.n[1:] != self.n[:-1]) | (self.run_id[1:] != self.run_id[:-1])
        return np.flatnonzero(np.r_[len(self) > 0, changed])

    def currencies_held(self) -> tuple[str, ...]:
        """The currencies these rows name, in configured order (the order of their first rows)."""
        codes = np.unique(self.currency[self.currency >= 0], return_index=True)
        return tuple(self.currencies[c] for c in codes[0][np.argsort(codes[1])])


@dataclass(frozen=True)
class LogData:
    runs: list[dict[str, Any]]  # the runs with cycles in scope (all runs of an empty scope's log)
    cycles: CycleColumns
    orders: list[dict[str, Any]]  # the orders of the cycles in scope
    trips: list[dict[str, Any]]  # the last guard trips and failed cycles
    events: list[dict[str, Any]]  # the last warnings and errors
    warnings: dict[int, int]  # warnings and errors per run
    breaches: list[Episode]  # limit breaches (advice) as episodes, in log order
    replays: dict[int, dict[str, Any]]  # replay role and book by run id


@dataclass(frozen=True)
class Summary:
    run: int
    mode: str
    status: str | None
    exit_reason: str | None
    role: str | None  # a replay's controller | fixed-leverage | buy-and-hold
    part: str | None  # a portfolio run's "book" or one of its currencies; None: a run of one currency
    cycles: int
    failed_cycles: int
    start: str | None
    end: str | None
    share_in_band: float | None
    rebalances: int
    orders_filled: int
    orders_rejected: int
    orders_recommended: int
    turnover_usd: float
    fees_usd: float
    max_drawdown: float | None
    equity_start_usd: float | None
    equity_end_usd: float | None
    return_total: float | None
    realised_vol_equity: float | None
    target_vol_equity: float | None  # a portfolio's book: its target σ_book / E
    book_var_max_usd: float | None  # a portfolio's book: the largest joint 1-day VaR
    book_worst_scenario_usd: float | None  # a portfolio's book: its worst loss on the joint grid
    nearest_cascade: float | None  # a portfolio's book: the nearest liquidation cascade (common move)
    guard_trips: int
    breaches: int  # episodes (a currency's own; a book's: all its currencies')
    warnings: int
    went_bust: str | None  # when, or None


def load_log(
    db: Path, *, since: datetime | None = None, until: datetime | None = None, run_id: int | None = None
) -> LogData:
    """What the report shows, read once; raises :class:`LogReadError` for a run the log does not hold."""
    with open_log(db) as conn:
        if not is_log(conn, db):
            if run_id is not None:
                raise LogReadError(f"{db} holds no run yet (asked for run {run_id})")
            return LogData([], CycleColumns.empty(), [], [], [], {}, [], {})
        all_runs = [dict(r) for r in conn.execute("select * from runs order by id")]
        if run_id is not None and run_id not in {r["id"] for r in all_runs}:
            ids = [r["id"] for r in all_runs]
            held = "no run" if not ids else f"run {ids[0]}" if len(ids) == 1 else f"runs {ids[0]}–{ids[-1]}"
            raise LogReadError(f"{db} has no run {run_id} (it holds {held})")
        clauses, times = time_filters(since, until)
        args: list[Any] = list(times)
        if run_id is not None:
            clauses.append("run_id = ?")
            args.append(run_id)
        where = f"where {' and '.join(clauses)}" if clauses else ""
        cycles = _cycle_columns(conn, where, args)
        in_scope = set(np.unique(cycles.run_id).tolist())
        runs = [r for r in all_runs if r["id"] in in_scope or (run_id is not None and r["id"] == run_id)]
        orders = (
            _rows(conn, "orders", "*", "cycle_id between ? and ?", [int(cycles.id[0]), int(cycles.id[-1])])
            if len(cycles)
            else []
        )
        trips = _rows(
            conn,
            "cycles",
            "run_id, n, ts, state, action, reason",
            f"(action = 'ERROR' or {_GUARD_TRIP})",
            [],
            where,
            args,
        )
        events = _rows(conn, "events", "run_id, ts, level, kind, message", "level != 'info'", [], where, args)
        warned = f"{where} and" if where else "where"
        warnings = dict(
            conn.execute(
                f"select run_id, count(*) from events {warned} level in ('warning', 'error') group by run_id",
                args,
            ).fetchall()
        )
        breaches = _breaches(conn, where, args, currency="currency" if cycles.currencies else "null")
        replays = _replays(conn)
    return LogData(runs, cycles, orders, trips, events, warnings, breaches, replays)


def _cycle_columns(conn: sqlite3.Connection, where: str, args: list[Any]) -> CycleColumns:
    held = {r[1] for r in conn.execute("pragma table_info(cycles)")}
    currencies: tuple[str, ...] = ()
    code = "null"
    if "currency" in held:
        currencies = tuple(
            r[0] for r in conn.execute("select distinct currency from cycles where currency is not null")
        )
        cases = " ".join(f"when ? then {i}" for i in range(len(currencies)))
        code = f"case currency {cases} end" if currencies else "null"
        args = [*currencies, *args]  # the case's placeholders come before the where's
    # the book's figures are read where some run has several currencies (a single currency's are its own)
    names = NUMBERS if len(currencies) > 1 else CYCLE_NUMBERS
    numbers = [
        c if c in held else BOOK_TARGET if c == "book_target_vol" and "portfolio" in held else "null"
        for c in names
    ]
    query = _CYCLE_QUERY.format(currency=code, numbers=", ".join(numbers), where=where)
    cursor = conn.execute(query, args)
    chunks = []
    while rows := cursor.fetchmany(CHUNK_ROWS):
        chunks.append(np.array(rows, dtype=float))  # None becomes NaN
    return CycleColumns.of(np.concatenate(chunks), currencies) if chunks else CycleColumns.empty()


def _breaches(conn: sqlite3.Connection, where: str, args: list[Any], *, currency: str) -> list[Episode]:
    """Advice episodes (each currency's); only cycles with advice (or none computed) are read, a gap
    ends an episode."""
    clause = f"{where} and" if where else "where"
    cursor = conn.execute(
        f"select run_id, n, ts, advice, {currency} from cycles {clause} (advice is null or advice != '[]') "
        "order by id",
        args,
    )
    tracker = BreachTracker()
    while rows := cursor.fetchmany(CHUNK_ROWS):
        tracker.feed(tuple(r) for r in rows)
    running = {r[0] for r in conn.execute("select id from runs where status = 'running'")}
    tracker.finish_runs({e.run_id for e in tracker.episodes} - running)
    return tracker.episodes


def _replays(conn: sqlite3.Connection) -> dict[int, dict[str, Any]]:
    if "replays" not in {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}:
        return {}
    return {r["run_id"]: dict(r) for r in conn.execute("select run_id, role, book, replay_key from replays")}


def _rows(
    conn: sqlite3.Connection,
    table: str,
    columns: str,
    condition: str,
    condition_args: list[Any],
    where: str = "",
    args: list[Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``table`` meeting ``condition`` (and the filters), the last :data:`LAST_ROWS` unless
    it is the orders, in log order."""
    clause = f"{where} and {condition}" if where else f"where {condition}"
    limit = "" if table == "orders" else f" limit {LAST_ROWS}"
    query = f"select {columns} from {table} {clause} order by id desc{limit}"
    return [dict(r) for r in conn.execute(query, [*(args or []), *condition_args])][::-1]


def summarize_runs(data: LogData) -> list[Summary]:
    """One summary per run in scope, in run order; a run of several currencies gives its book's, then
    each currency's."""
    out = []
    for run in data.runs:
        held = data.cycles.of_run(run["id"]).currencies_held()
        if len(held) > 1:
            out += [summarize(data, run, part=BOOK), *(summarize(data, run, part=x) for x in held)]
        else:
            out.append(summarize(data, run))
    return out


def run_columns(data: LogData, run_id: int, part: str | None = None) -> CycleColumns:
    """The rows of a run, of one of its currencies, or its book (one row per cycle)."""
    c = data.cycles.of_run(run_id)
    if part is None:
        return c
    return book_columns(c) if part == BOOK else c.of_currency(part)


def book_columns(c: CycleColumns) -> CycleColumns:
    """One row per cycle of a portfolio run (its currencies' rows share ``n``): ``equity_usd`` is the
    book's (the currencies' summed, in USD) and the book's figures are kept; the currencies' own are
    NaN.  Good when a good row carries the book's equity; a rebalance or guard trip in any currency
    counts for the cycle."""
    if not len(c):
        return c
    starts = c.cycle_starts()
    last = np.r_[starts[1:], len(c)] - 1
    equity = np.fmax.reduceat(np.where(c.good, c["portfolio_equity_usd"], np.nan), starts)
    nan = np.full(starts.size, np.nan)
    numbers = {k: nan for k in CYCLE_NUMBERS} | {k: c[k][last] for k in (*BOOK_NUMBERS, "book_target_vol")}
    numbers["equity_usd"] = equity
    return CycleColumns(
        c.id[last],
        c.run_id[last],
        c.n[last],
        c.t_s[last],
        np.isfinite(equity),
        np.logical_or.reduceat(c.rebalance & c.good, starts),
        np.logical_or.reduceat(c.guard_trip & c.good, starts),
        np.full(starts.size, -1),
        numbers,
        c.currencies,
    )


def summarize(data: LogData, run: dict[str, Any], *, part: str | None = None) -> Summary:
    """``part``: None for a run of one currency, :data:`BOOK` or a currency for a portfolio run."""
    rows = data.cycles.of_run(run["id"])
    c = rows if part is None else book_columns(rows) if part == BOOK else rows.of_currency(part)
    good = c.good
    equity = c["equity_usd"][good]
    inside, banded = _in_band(rows if part == BOOK else c)
    index_of = dict(zip(rows.id.tolist(), rows["index_price"].tolist(), strict=True))
    orders = [o for o in data.orders if o["run_id"] == run["id"] and part in (None, BOOK, o.get("currency"))]
    filled = [o for o in orders if o["status"] == "filled"]
    turnover = sum(json.loads(o["request"] or "{}").get("notional_usd", 0.0) for o in filled)
    fees = sum((o["fee_coin"] or 0.0) * _number(index_of.get(o["cycle_id"])) for o in filled)
    solvent = equity > 0
    start, end = (_iso(c.t_s[0]), _iso(c.t_s[-1])) if len(c) else (None, None)
    episodes = [e for e in data.breaches if e.run_id == run["id"]]
    var_max, cascade = c["portfolio_var_usd"][good], c["cascade_distance"][good]
    return Summary(
        run=run["id"],
        mode=run["mode"],
        status=run["status"],
        exit_reason=run["exit_reason"],
        role=data.replays.get(run["id"], {}).get("role"),
        part=part,
        cycles=len(c),
        failed_cycles=int(np.count_nonzero(~good)),
        start=start,
        end=end,
        share_in_band=inside / banded if banded else None,
        rebalances=int(np.count_nonzero(c.rebalance & good)),
        orders_filled=len(filled),
        orders_rejected=sum(1 for o in orders if o["status"] == "rejected"),
        orders_recommended=sum(1 for o in orders if o["status"] == "recommended"),
        turnover_usd=turnover,
        fees_usd=fees,
        max_drawdown=_max_drawdown(equity),
        equity_start_usd=float(equity[0]) if equity.size else None,
        equity_end_usd=float(equity[-1]) if equity.size else None,
        return_total=float(equity[-1] / equity[0] - 1.0) if equity.size and equity[0] > 0 else None,
        realised_vol_equity=realised_vol(c.t_s[good], equity) if solvent.all() else None,
        target_vol_equity=(
            _median(c["book_target_vol"][good])
            if part == BOOK
            else _target_vol(c["target_leverage"][good], c["sigma_hat"][good])
        ),
        book_var_max_usd=None if part != BOOK else _extreme(np.nanmax, var_max),
        book_worst_scenario_usd=None
        if part != BOOK
        else _extreme(np.nanmin, c["portfolio_worst_scenario_usd"][good]),
        nearest_cascade=None if part != BOOK else _extreme(np.nanmin, cascade),
        guard_trips=int(np.count_nonzero(c.guard_trip & good)),
        breaches=sum(1 for e in episodes if part in (None, BOOK) or e.currency == part),
        warnings=int(data.warnings.get(run["id"], 0)),
        went_bust=_bust(c, run),
    )


def _in_band(c: CycleColumns) -> tuple[int, int]:
    """Cycles inside the band, of those with one; a portfolio's cycle counts when every currency is."""
    band_low, band_high, lev = (
        np.where(c.good, c[k], np.nan) for k in ("band_low", "band_high", "signed_leverage")
    )
    banded = ~np.isnan(band_low) & ~np.isnan(lev)
    inside = (band_low <= lev) & (lev <= band_high) & banded
    if len(c.currencies_held()) > 1:
        starts = c.cycle_starts()
        held = np.logical_or.reduceat(banded, starts)
        inside = np.logical_and.reduceat(inside | ~banded, starts)[held]
        return int(np.count_nonzero(inside)), int(np.count_nonzero(held))
    return int(np.count_nonzero(inside)), int(np.count_nonzero(banded))


def _bust(c: CycleColumns, run: dict[str, Any]) -> str | None:
    broke = np.flatnonzero(c.good & (c["equity_usd"] <= 0))
    if broke.size:
        return _iso(c.t_s[broke[0]])
    reason = (run.get("exit_reason") or "").lower()
    if run.get("status") == "halted" and "account equity is" in reason:  # the halt on equity <= 0
        return run.get("finished_at") or "at the halt"
    return None


def _max_drawdown(equity: np.ndarray) -> float | None:
    if not equity.size:
        return None
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, 1.0 - equity / peak, np.nan)
    return float(np.nanmax(drawdown)) if np.isfinite(drawdown).any() else None


def _iso(t_s: float) -> str:
    return np.datetime_as_string(np.datetime64(round(t_s * 1000), "ms"), unit="s") + "Z"


def _number(value: float | None) -> float:
    return 0.0 if value is None or value != value else value  # NULL (None, NaN) counts as 0


def _target_vol(target: np.ndarray, sigma: np.ndarray) -> float | None:
    return _median(np.abs(target) * sigma)


def _median(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else None


def _extreme(reduce: Any, values: np.ndarray) -> float | None:
    return float(reduce(values)) if np.isfinite(values).any() else None
