"""The simulated exchange (Deribit-compatible): one engine, two faces.

In process through :class:`controller.venues.SimVenue` (the embedded default, replays, fast
tests), and over HTTP through :class:`~controller.sim.server.SimServer`, which speaks the Deribit
v2 JSON-RPC subset that ccxt uses (:mod:`.deribit_api`).  The engine (:mod:`.engine`) is built
from :mod:`.model`, :mod:`.market`, :mod:`.listing`, :mod:`.quotes`, :mod:`.orders`,
:mod:`.wallet`, :mod:`.account` and :mod:`.margin`; docs/simulator.md states its rules.
Several currencies (BTC and ETH, a wallet each, on one clock and correlated markets):
:class:`~controller.sim.multi.MultiSim`, routed by currency in :mod:`.deribit_router`.
"""

from controller.sim.engine import SimExchange
from controller.sim.market import ReplayData, ReplayError, ReplayPath, load_replay_csv
from controller.sim.model import DEFAULT_START, SimConfig, SimError
from controller.sim.multi import MultiSim, currency_config

__all__ = [
    "DEFAULT_START",
    "MultiSim",
    "ReplayData",
    "ReplayError",
    "ReplayPath",
    "SimConfig",
    "SimError",
    "SimExchange",
    "currency_config",
    "load_replay_csv",
]
