"""The controller loop (:mod:`.controller`), what a cycle hands around (:mod:`.cycles`), the
portfolio of several currencies (:mod:`.portfolio`) and the process settings of a run (:mod:`.runtime`)."""

from controller.loop.controller import HALTS, Controller
from controller.loop.cycles import ControllerHalted, CycleResult, Observed, PortfolioShare, ReadVenue

__all__ = [
    "HALTS",
    "Controller",
    "ControllerHalted",
    "CycleResult",
    "Observed",
    "PortfolioShare",
    "ReadVenue",
]
