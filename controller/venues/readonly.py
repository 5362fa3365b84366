"""The view of a venue a dry run gets: it can read, and has no method that sends anything."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from controller.venues.base import AccountSnapshot, InstrumentSpec, OrderReport, TradeReport, Venue


class ReadOnlyVenue:
    """What a dry run may do with a venue: read.  There is no method that sends anything."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        self.name = venue.name

    def load_instruments(self) -> Mapping[str, InstrumentSpec]:
        return self._venue.load_instruments()

    def snapshot(self) -> AccountSnapshot:
        return self._venue.snapshot()

    def get_order(self, *, order_id: str | None = None, label: str | None = None) -> OrderReport | None:
        return self._venue.get_order(order_id=order_id, label=label)

    def trades_by_label(self, label: str, instrument: str) -> list[TradeReport]:
        return self._venue.trades_by_label(label, instrument)

    def server_time(self) -> datetime:
        return self._venue.server_time()

    def open_orders(self) -> list[OrderReport]:
        return self._venue.open_orders()
