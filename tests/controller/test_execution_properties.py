"""Properties of execution over any sequence of exchange behaviours (hypothesis).

The controller runs in process against the simulated exchange, through the same Deribit JSON-RPC
layer the HTTP face uses.  Between the venue and that layer sits the exchange's misbehaviour, drawn
by hypothesis for every order sent: the reply is lost after the order executed, the request times
out before it arrives, it executes only some calls later (a slow acknowledgement — after its
``valid_until`` the simulated matching engine refuses it, as Deribit's does), the exchange refuses
it, or lookups fail.  Whatever the sequence:

* no label is ever sent twice;
* no order is sent while another on the hedge is unresolved;
* every order is decided on a position that includes every fill known before it;
* once every order is resolved, the position the journal's fills add up to is the exchange's.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.config import build_config
from controller.execution import OrderExecutor
from controller.journal import Journal
from controller.loop import Controller
from controller.sim import SimConfig, SimError, SimExchange
from controller.sim.deribit_api import DeribitApi
from controller.sim.listing import ListingParams
from controller.venues import SimVenue
from tests.controller.e2e import journal_position

SENDS = ("private/buy", "private/sell")
BEHAVIOURS = ("ok", "lost_reply", "lost_request", "slow", "refused")


@dataclass
class Misbehaving:
    """Wraps the exchange's API: each send gets the next behaviour of ``plan`` (then "ok")."""

    api: DeribitApi
    plan: list[tuple[str, int]]  # (behaviour, calls until a slow send executes)
    lookup_failures: int
    sent: dict[str, int] = field(default_factory=dict)  # label -> requests received
    pending: list[list[Any]] = field(default_factory=list)  # [calls left, method, params]

    def call(self, method: str, params: dict[str, str]) -> Any:
        self._run_pending()
        if method in SENDS:
            label = params.get("label", "")
            self.sent[label] = self.sent.get(label, 0) + 1
            behaviour, delay = self.plan.pop(0) if self.plan else ("ok", 0)
            if behaviour == "refused":
                raise SimError(10009, "not_enough_funds", reason="drawn by the test")
            if behaviour == "lost_request":
                raise SimError(10040, "retry", reason="the request never arrived")
            if behaviour == "slow":
                self.pending.append([delay, method, params])
                raise SimError(10040, "retry", reason="no answer in time (it executes later)")
            result = self.api.call(method, params)
            if behaviour == "lost_reply":
                raise SimError(10040, "retry", reason="the reply was lost")
            return result
        if method == "private/get_order_state_by_label" and self.lookup_failures > 0:
            self.lookup_failures -= 1
            raise SimError(10040, "retry", reason="lookup failed")
        return self.api.call(method, params)

    def _run_pending(self) -> None:
        for item in list(self.pending):
            item[0] -= 1
            if item[0] <= 0:
                self.pending.remove(item)
                with contextlib.suppress(SimError):  # refused late (valid_until passed): nothing placed
                    self.api.call(item[1], item[2])


def build(
    tmp: Path, plan: list[tuple[str, int]], lookup_failures: int
) -> tuple[Controller, SimExchange, Misbehaving]:
    engine = SimExchange(
        SimConfig(seed=3, initial_balance=10.0, listing=ListingParams(weeklies=0, monthlies=0, quarterlies=0))
    )
    engine.place_order(name="BTC-PERPETUAL", direction="sell", amount=400_000, label="setup")
    venue = SimVenue(engine)
    api = Misbehaving(venue.api, plan, lookup_failures)
    venue.api = api  # type: ignore[assignment]  # the exchange misbehaves between venue and engine
    config = build_config(
        {
            "run": {"mode": "paper", "order_valid_s": 15, "valid_margin_s": 5, "retry_attempts": 1},
            "risk": {"sigma_sources": ["constant"], "sigma_constant": 0.6, "ewma_half_life_s": 0},
            "policy": {"base_leverage": 2.0, "band": 0.03, "min_order_usd": 10},
            "guards": {"max_price_jump": 0.5, "max_drawdown": 0.99},
        }
    )
    journal = Journal(tmp / "p.db")
    executor = OrderExecutor(
        venue,
        journal,
        clock=lambda: engine.now,
        order_timeout_s=1,
        valid_for_s=15,
        valid_margin_s=5,
        sleep=lambda s: None,
    )
    controller = Controller(
        config=config,
        venue=venue,
        executor=executor,
        journal=journal,
        clock=lambda: engine.now,
        sleep=lambda s: None,
        advance=lambda: engine.advance(5.0),
    )
    return controller, engine, api


behaviour = st.tuples(st.sampled_from(BEHAVIOURS), st.integers(min_value=1, max_value=40))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(behaviour, min_size=1, max_size=6),
    moves=st.lists(st.floats(min_value=0.93, max_value=1.07), min_size=12, max_size=12),
    lookup_failures=st.integers(min_value=0, max_value=6),
)
def test_no_label_twice_no_second_hedge_in_flight_and_the_journal_matches(plan, moves, lookup_failures):
    with tempfile.TemporaryDirectory() as tmp:
        controller, engine, api = build(Path(tmp), list(plan), lookup_failures)
        controller.start()
        for move in moves:
            engine.shock(price_factor=move)
            controller.cycle()
        for _ in range(20):  # calm: let everything in flight resolve (valid_until passes in 5 virtual s)
            controller.cycle()
            if not controller.in_flight and not api.pending:
                break
        assert not controller.in_flight, [o.label for o in controller.in_flight]
        # no label sent twice, and none placed twice on the exchange
        ours = {label: n for label, n in api.sent.items() if label.startswith("lv-")}
        assert all(n == 1 for n in ours.values()), ours
        assert all(len(engine.orders_by_label(label)) <= 1 for label in ours)
        db = controller.journal.db
        # no order went out while another on the hedge was unresolved: each intent comes after the
        # last transition of the order before it
        orders = list(db.query("select id from orders where label like 'lv-%' order by id"))
        for before, after in itertools.pairwise(orders):
            settled = db.execute(
                "select max(id) from order_events where order_id = ?", [before["id"]]
            ).fetchone()[0]
            intent = db.execute(
                "select min(id) from order_events where order_id = ?", [after["id"]]
            ).fetchone()[0]
            assert settled < intent
        # every decision saw every fill known before it: an order's position_before is the start
        # plus the fills of the orders before it (a stale snapshot here is how hedges double)
        held = -400_000.0
        for o in db.query("select * from orders where label like 'lv-%' order by id"):
            assert o["position_before"] == held, o
            held += (o["filled_amount"] or 0.0) * (1 if o["side"] == "buy" else -1)
        assert journal_position(Path(tmp) / "p.db", -400_000.0) == engine.positions["BTC-PERPETUAL"].size
        controller.close()
