"""When and at what price Deribit settles: the daily settlement and delivery at expiry.

* Daily settlement at 08:00 UTC: "Your realised and unrealised session profits (profits made from
  one settlement to other settlement) … At settlement your session profits/losses will be booked
  to your BTC cash balance" (https://www.deribit.com/docs/contract-specifications/).  The simulator
  settles each open position at its mark (:meth:`controller.sim.wallet.Wallet.settle_session`).
* Delivery at expiry (08:00 UTC) at the delivery price: "the time-weighted average of the Deribit
  index over the last 30 min before the expiry" (https://support.deribit.com/hc/en-us/articles/
  25954416110877-Prices-of-Virtual-Assets); "the Deribit index gets calculated every 6 seconds. So
  the final delivery price is the average of 300 index prices taken in the last 30 minutes before
  expiration" (https://www.deribit.com/docs/expiration-price/).  :func:`delivery_price` takes
  those 300 readings, 07:30:00, 07:30:06 … 07:59:54.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

DELIVERY_WINDOW = timedelta(minutes=30)
DELIVERY_READINGS = 300  # one every 6 seconds
SETTLEMENT_TIME = time(8)  # UTC


def delivery_price(index_at: Callable[[datetime], float], expiry: datetime) -> float:
    """The average of the index read every 6 s over the 30 minutes before ``expiry``."""
    step = DELIVERY_WINDOW / DELIVERY_READINGS
    start = expiry - DELIVERY_WINDOW
    return sum(index_at(start + k * step) for k in range(DELIVERY_READINGS)) / DELIVERY_READINGS


def next_settlement_after(t: datetime) -> datetime:
    """The first daily settlement (08:00 UTC) strictly after ``t``."""
    candidate = datetime.combine(t.astimezone(UTC).date(), SETTLEMENT_TIME, tzinfo=UTC)
    return candidate if candidate > t else candidate + timedelta(days=1)
