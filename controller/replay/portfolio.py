"""Replays of a book in several currencies: the portfolio controller (one volatility target for the
whole book) beside one independent controller per currency, on the histories' common timestamps.

``levctl replay --data BTC.csv --data ETH.csv`` runs both on a two-currency simulator (each currency
its own wallet and perpetual, the replayed paths as given) and compares the books' USD equity:
full-period volatility against the target, tracking error, worst day, maximum drawdown, trades.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from controller.app import order_executor
from controller.config import Config
from controller.execution import DryRunExecutor
from controller.journal import Journal
from controller.lock import RunLocks
from controller.loop import Controller, ControllerHalted
from controller.loop.portfolio import PortfolioController, PortfolioSettings
from controller.replay.joint_data import JointReplayData
from controller.replay.metrics import EquityFigures, equity_figures
from controller.replay.run import Progress, _replay_once, check_replay_config, reference_book
from controller.sim import MultiSim, SimExchange, currency_config
from controller.sim.market import ReplayPath
from controller.venues.sim import SimVenue, engine_config

PORTFOLIO, INDEPENDENT = "portfolio", "independent"


@dataclass(frozen=True)
class BookComparison:
    role: str  # "portfolio" or "independent"
    run_ids: tuple[int, ...]
    cycles: int
    status: str
    target_vol: float
    equity_start_usd: float
    equity_end_usd: float
    figures: EquityFigures
    trades: int


@dataclass(frozen=True)
class PortfolioReplay:
    replay_key: str
    currencies: tuple[str, ...]
    books: tuple[BookComparison, ...]


def replay_portfolio(
    config: Config,
    joint: JointReplayData,
    db: Path,
    *,
    progress: Progress = lambda role, done, total: None,
    cycles_per_commit: int = 2000,
) -> PortfolioReplay:
    """The portfolio controller and the independent controllers over ``joint``; every run lands in ``db``."""
    check_replay_config(config)
    key = uuid.uuid4().hex[:12]
    target = config.policy.base_leverage * config.risk.reference_vol
    locks = RunLocks(db).acquire()
    journal = Journal(db)
    try:
        portfolio = _portfolio_once(
            config, joint, journal, progress=progress, cycles_per_commit=cycles_per_commit
        )
        independent = [
            _replay_once(
                config.for_currency(c),
                joint.data[c],
                journal,
                role=f"{INDEPENDENT} {c}",
                progress=progress,
                cycles_per_commit=cycles_per_commit,
            )
            for c in joint.currencies
        ]
        for role, run_id in [(PORTFOLIO, portfolio[0])] + [
            (f"{INDEPENDENT} {c}", r.run_id) for c, r in zip(joint.currencies, independent, strict=True)
        ]:
            journal.record_replay(
                {
                    "replay_key": key,
                    "run_id": run_id,
                    "role": role,
                    "book": config.file.replay.book,
                    "data_source": " + ".join(d.source for d in joint.data.values()),
                    "rows": int(joint.times_ms.size),
                    "first_ts": joint.start.isoformat(),
                    "last_ts": joint.end.isoformat(),
                    "gaps": [[a.isoformat(), b.isoformat()] for a, b in joint.gaps],
                    "target_vol": target,
                }
            )
    finally:
        journal.close()
        locks.release()
    statuses = ", ".join(sorted({r.status for r in independent}))
    books = (
        _figures(db, PORTFOLIO, (portfolio[0],), portfolio[1], portfolio[2], target),
        _figures(
            db,
            INDEPENDENT,
            tuple(r.run_id for r in independent),
            max(r.cycles for r in independent),
            statuses,
            target,
        ),
    )
    return PortfolioReplay(key, joint.currencies, books)


def _portfolio_once(
    config: Config, joint: JointReplayData, journal: Journal, *, progress: Progress, cycles_per_commit: int
) -> tuple[int, int, str]:
    """(run id, cycles, status) of the portfolio controller over the joint history."""
    legs = {c: config.for_currency(c) for c in joint.currencies}
    engines = []
    for c, leg in legs.items():
        path = ReplayPath(joint.data[c])
        engines.append(
            SimExchange(
                replace(currency_config(c, base=engine_config(leg.sim_settings())), start=path.start),
                path=path,
            )
        )
    exchange = MultiSim(engines)
    venues = {
        c: SimVenue.on(
            exchange,
            c,
            hedge_instrument=leg.venue.hedge_instrument,
            use_vol_index=leg.venue.sim.use_vol_index,
            read_chain="chain" in leg.risk.sigma_sources,
        )
        for c, leg in legs.items()
    }
    controllers = {
        c: _controller(leg, venues[c], journal, clock=lambda: exchange.now) for c, leg in legs.items()
    }
    portfolio = PortfolioController(controllers, PortfolioSettings.of(config), clock=lambda: exchange.now)
    portfolio.start()
    books = {c: reference_book(leg) for c, leg in legs.items()}
    total, done, status = int(joint.times_ms.size), 0, "completed"
    with journal.batched(cycles_per_commit=cycles_per_commit):
        for i, t in enumerate(joint.times_ms):
            seen = {c: len(exchange.engine(c).events) for c in legs}
            if i:
                exchange.advance_to(datetime.fromtimestamp(t / 1000.0, UTC))
            for c, book in books.items():
                label = f"{config.run.label_prefix}-{portfolio.first.run_key}-{c}-b{i}"
                for message in book.before_cycle(exchange.engine(c), venues[c], label):
                    journal.event(
                        run_id=portfolio.run_id, ts=exchange.now, level="info", kind="book", message=message
                    )
            done = i + 1
            try:
                portfolio.cycle()
            except ControllerHalted as exc:
                status = f"halted: {exc}"
                break
            liquidated = [
                c for c in legs if any(e.kind == "liquidation" for e in exchange.engine(c).events[seen[c] :])
            ]
            if liquidated:
                status = f"liquidated ({', '.join(liquidated)})"
                break
            if i % 500 == 0 or i == total - 1:
                progress(PORTFOLIO, i + 1, total)
    reason = f"{done} of {total} common rows replayed"
    portfolio.finish(
        "completed" if status == "completed" else "halted",
        reason if status == "completed" else f"{status} after {reason}",
    )
    progress(PORTFOLIO, total, total)
    return portfolio.run_id, done, status


def _controller(
    config: Config, venue: SimVenue, journal: Journal, *, clock: Callable[[], datetime]
) -> Controller:
    executor = (
        DryRunExecutor()
        if config.run.mode == "dry-run"
        else order_executor(venue, journal, config, clock=clock, sleep=lambda s: None)
    )
    return Controller(
        config=config,
        venue=venue,
        executor=executor,
        journal=journal,
        clock=clock,
        sleep=lambda s: None,
        carry_state=False,
        resume_state=False,
    )


def _figures(
    db: Path, role: str, run_ids: tuple[int, ...], cycles: int, status: str, target: float
) -> BookComparison:
    """The book's USD equity (the runs' equity summed per cycle) and its figures."""
    marks = ", ".join("?" for _ in run_ids)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            f"select n, min(venue_time), sum(equity_usd), count(*) from cycles where run_id in ({marks}) "
            "and equity_usd is not null group by n order by n",
            run_ids,
        ).fetchall()
        trades = conn.execute(
            f"select count(*) from orders where run_id in ({marks}) and status = 'filled'", run_ids
        ).fetchone()[0]
    want = len(run_ids) if role == INDEPENDENT else rows[0][3] if rows else 0
    rows = [r for r in rows if r[3] == want]  # cycles where every currency has a row
    times = np.array([datetime.fromisoformat(r[1]).timestamp() for r in rows])
    equity = np.array([r[2] for r in rows], dtype=float)
    return BookComparison(
        role=role,
        run_ids=run_ids,
        cycles=cycles,
        status=status,
        target_vol=target,
        equity_start_usd=float(equity[0]) if equity.size else float("nan"),
        equity_end_usd=float(equity[-1]) if equity.size else float("nan"),
        figures=equity_figures(times, equity, target_vol=target),
        trades=int(trades),
    )
