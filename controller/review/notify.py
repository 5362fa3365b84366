"""Telling a person what matters while the controller runs: the local log (stderr) and apprise.

:class:`AlertWatch` turns what the loop tells after each committed cycle (a notice: the cycle's row,
events and orders, or the run's end) into alerts, on changes only — a breach or guard trip when it
starts and when it ends, never every cycle:

===========  ========  ==========================================================================
kind         level     when
===========  ========  ==========================================================================
halt         critical  the controller halted, or the run ended halted or failed
stopped      info      the run ended otherwise (cycles done, stop requested)
reducing     warning   the policy went to REDUCING (and info when it is back)
guard        warning   a guard holds the controller (stale data, jump, kill switch …), and its end
failed       warning   N cycles in a row failed (``failed_in_a_row``), and the recovery
fill         info      an order of the cycle filled
liquidation  critical  the move to liquidation came within ``liquidation_distance``, and its end
var          warning   the 1-day VaR above its limit: the ``[guards] max_var_fraction`` guard (the
                       cycle goes REDUCING, its advice names what to cut) or ``var_fraction`` of
                       equity (by default the guard's), and its end
breach       warning   an options limit is exceeded (the cycle's advice), and its end
book         warning   a run of several currencies: a guard on the whole book (its joint VaR, its
                       liquidation cascade) puts every currency in REDUCING, and its end; critical
                       when the cascade's common move comes within ``liquidation_distance``
===========  ========  ==========================================================================

In a run of several currencies each currency's row is watched on its own (its REDUCING, guards,
liquidation, VaR and breaches start and end with its own rows, and the message names it), and the
book once per cycle.

:class:`Notifier` writes every alert to the run's log (so stderr shows breaches start and end) and
sends those at or above ``level`` whose kind is in ``events`` to the apprise URLs, on a background
thread through a bounded queue: the loop never waits for a notification service.  A failed send is
returned to the loop as an event (journaled with the next cycle), never an exception.  A message
carries figures and the controller's own words, never a URL's credentials.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.review.breaches import GUARD_WORDS, BreachTracker, advice_texts, breach_key

LEVELS = {"info": 0, "warning": 1, "critical": 2}
KINDS = ("halt", "stopped", "reducing", "guard", "failed", "fill", "liquidation", "var", "breach", "book")
BOOK_GUARD_WORDS = ("the book's 1-day VaR", "would liquidate the book")  # controller.loop.portfolio_risk
URLS_ENV = "LEVCTL_NOTIFY_URLS"
QUEUE_SIZE = 200
Event = tuple[str, str, str]


class NotifyError(ValueError):
    """The notification settings are unusable (an apprise URL it does not understand …)."""


class NoticeLike(Protocol):
    """What the loop tells (``controller.records.Notice``): read by attribute, never imported."""

    @property
    def run_id(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def venue(self) -> str: ...
    @property
    def row(self) -> Mapping[str, Any]: ...
    @property
    def events(self) -> tuple[Mapping[str, Any], ...]: ...
    @property
    def orders(self) -> tuple[Any, ...]: ...
    @property
    def stopped(self) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class NotifySettings:
    urls: tuple[str, ...] = ()
    level: str = "warning"
    events: tuple[str, ...] = KINDS
    failed_in_a_row: int = 3
    liquidation_distance: float | None = 0.10
    var_fraction: float | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True)
class Alert:
    kind: str
    level: str
    title: str
    body: str


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


@dataclass
class AlertWatch:
    """Pure: notices in, alerts out, on changes of state only."""

    settings: NotifySettings
    _state: dict[int, dict[str, Any]] = field(default_factory=dict)
    _breaches: BreachTracker = field(default_factory=BreachTracker)

    def observe(self, notice: NoticeLike) -> list[Alert]:
        where = f"run {notice.run_id} ({notice.mode} on {notice.venue})"
        if notice.stopped is not None:
            state = self._state.setdefault(notice.run_id, {"failed": 0, "halt": None, "flags": {}})
            return self._stopped(notice.stopped, state, where)
        row = notice.row
        currency = row.get("currency")
        state = self._currency_state(notice.run_id, currency)
        n, prefix = row.get("n"), f"{where} cycle {row.get('n')}" + (f" {currency}" if currency else "")
        alerts: list[Alert] = self._book(notice.run_id, row, f"{where} cycle {n}")
        if row.get("action") == "ERROR":
            state["failed"] += 1
            if state["failed"] == self.settings.failed_in_a_row:
                alerts.append(
                    Alert(
                        "failed",
                        "warning",
                        f"{state['failed']} cycles failed in a row",
                        f"{prefix}: {row.get('reason')}",
                    )
                )
            return alerts
        if state["failed"] >= self.settings.failed_in_a_row:
            alerts.append(
                Alert("failed", "info", "cycles succeed again", f"{prefix} after {state['failed']} failures")
            )
        state["failed"] = 0
        if row.get("state") == "HALTED" or row.get("action") == "HALT":
            state["halt"] = row.get("reason")
            return [*alerts, Alert("halt", "critical", "HALTED", f"{prefix}: {row.get('reason')}")]
        reason = str(row.get("reason") or "")
        texts = _texts(row.get("advice"))
        var_guard = _var_guard(reason) or next((t for t in texts or () if _is_var(t)), "")
        equity = row.get("equity_usd")
        move, var = row.get("liquidation_move"), row.get("var_usd")
        limit_move = self.settings.liquidation_distance
        var_limit = (
            None
            if self.settings.var_fraction is None or equity is None
            else self.settings.var_fraction * equity
        )
        conditions = {
            "reducing": (row.get("state") == "REDUCING", f"REDUCING: {reason}", "back to ACTIVE"),
            "guard": (
                any(w in reason for w in GUARD_WORDS) and row.get("state") != "REDUCING",
                f"guard holds the controller: {reason}",
                "guards clear",
            ),
            "liquidation": (
                move is not None and limit_move is not None and abs(move) < limit_move,
                f"liquidation is {_fmt(move, '+.1%')} away (alert within {_fmt(limit_move, '.0%')})",
                f"liquidation {_fmt(move, '+.1%')} away again",
            ),
            "var": (
                bool(var_guard) or (var is not None and var_limit is not None and var > var_limit),
                "VaR above its limit: "
                + (
                    var_guard
                    or f"VaR {_fmt(var, ',.0f')} USD is {_fmt(_share(var, equity), '.1%')} of equity, "
                    f"above {_fmt(self.settings.var_fraction, '.0%')}"
                ),
                f"VaR {_fmt(var, ',.0f')} USD ({_fmt(_share(var, equity), '.1%')} of equity) within limits",
            ),
        }
        levels = {"reducing": "warning", "guard": "warning", "liquidation": "critical", "var": "warning"}
        for kind, (now_on, on_text, off_text) in conditions.items():
            was_on = state["flags"].get(kind, False)
            if now_on and not was_on:
                alerts.append(Alert(kind, levels[kind], on_text.split(":")[0], f"{prefix}: {on_text}"))
            elif was_on and not now_on:
                alerts.append(Alert(kind, "info", off_text, f"{prefix}: {off_text}"))
            state["flags"][kind] = now_on
        others = None if texts is None else [t for t in texts if not _is_var(t)]  # VaR: told as "var"
        started, ended = self._breaches.observe(
            notice.run_id, n or 0, str(row.get("ts")), others, currency=currency
        )
        alerts += [
            Alert("breach", "warning", f"breach: {e.key}", f"{prefix}: " + " | ".join(e.texts))
            for e in started
        ]
        alerts += [
            Alert(
                "breach",
                "info",
                f"breach ended: {e.key}",
                f"{prefix}: {e.key} within its limit after {e.cycles} cycles",
            )
            for e in ended
        ]
        alerts += [_fill(prefix, o) for o in notice.orders if (o.filled_amount or 0) > 0]
        return alerts

    def _currency_state(self, run_id: int, currency: str | None) -> dict[str, Any]:
        """A currency's flags (a run of one currency has one set); a halt is the run's."""
        run = self._state.setdefault(run_id, {"failed": 0, "halt": None, "flags": {}})
        if currency is None:
            return run
        return run.setdefault("currencies", {}).setdefault(currency, {"failed": 0, "halt": None, "flags": {}})

    def _book(self, run_id: int, row: Mapping[str, Any], prefix: str) -> list[Alert]:
        """The whole book's guards, once per cycle, from the first row of a portfolio's cycle."""
        portfolio = row.get("portfolio")
        run = self._state.setdefault(run_id, {"failed": 0, "halt": None, "flags": {}})
        if (
            not isinstance(portfolio, Mapping)
            or "goals" not in portfolio
            or run.get("book_n") == row.get("n")
        ):
            return []
        run["book_n"] = row.get("n")
        reason = str(row.get("reason") or "")
        guard = "; ".join(p.strip() for p in reason.split(";") if any(w in p for w in BOOK_GUARD_WORDS))
        distance, limit = row.get("cascade_distance"), self.settings.liquidation_distance
        near = distance is not None and limit is not None and distance < limit
        flags = run.setdefault("book", {"guard": False, "cascade": False})
        alerts = []
        for name, now_on, level, on_text, off_text in (
            ("guard", bool(guard), "warning", f"the book is REDUCING: {guard}", "the book's guards clear"),
            (
                "cascade",
                near,
                "critical",
                f"a common move of {_fmt(distance, '.1%')} would liquidate the whole book "
                f"(cascade loss {_fmt(row.get('cascade_loss_usd'), ',.0f')} USD; alert within "
                f"{_fmt(limit, '.0%')})",
                f"the book's liquidation cascade is {_fmt(distance, '.1%')} away again",
            ),
        ):
            if now_on and not flags[name]:
                alerts.append(
                    Alert("book", level, on_text.split(":")[0].split(" (")[0], f"{prefix}: {on_text}")
                )
            elif flags[name] and not now_on:
                alerts.append(Alert("book", "info", off_text, f"{prefix}: {off_text}"))
            flags[name] = now_on
        return alerts

    def _stopped(self, stopped: tuple[str, str], state: dict[str, Any], where: str) -> list[Alert]:
        status, reason = stopped
        if status in ("halted", "failed"):
            halts = [state["halt"], *(c["halt"] for c in state.get("currencies", {}).values())]
            if any(h is not None and h in reason for h in halts):
                return []  # the halt was told with its cycle
            return [Alert("halt", "critical", f"run {status.upper()}", f"{where} {status}: {reason}")]
        return [Alert("stopped", "info", f"run {status}", f"{where} {status}: {reason}")]


def _share(value: float | None, of: float | None) -> float | None:
    return None if value is None or not of else value / of


_VAR_GUARD = re.compile(r"[^;:]*\bVaR\b[^;:]*\bof equity, above\b[^;:]*")


def _var_guard(reason: str) -> str:
    """The VaR guard's words in a cycle's reason ("1-day 99% VaR … is 6.1% of equity, above 5%")."""
    found = _VAR_GUARD.search(reason)
    return found.group(0).strip() if found else ""


def _is_var(text: str) -> bool:
    return "VaR" in breach_key(text)


def _texts(advice: Any) -> list[str] | None:
    if advice is None:
        return None
    if isinstance(advice, str):
        return advice_texts(advice)
    return [str(a) for a in advice]


def _fill(prefix: str, order: Any) -> Alert:
    price = "" if order.avg_price is None else f" at {order.avg_price:,.2f}"
    text = f"{order.side.value} {order.filled_amount:g} {order.instrument}{price}"
    return Alert("fill", "info", "fill", f"{prefix}: {text} ({order.label}, {order.state.value})")


def notify_urls(configured: Iterable[str], environ: Mapping[str, str]) -> tuple[str, ...]:
    """The config's URLs and those of ``LEVCTL_NOTIFY_URLS`` (separated by spaces or commas)."""
    extra = [u for u in re.split(r"[\s,]+", environ.get(URLS_ENV, "")) if u]
    return tuple(dict.fromkeys([*configured, *extra]))


def url_name(url: str) -> str:
    """A URL as it may be shown: its scheme only (tokens and passwords live in the rest)."""
    return url.split("://", 1)[0] + "://…"


class Notifier:
    """The loop's ``notify`` callable: alerts to the log, and to apprise on a background thread."""

    def __init__(
        self,
        settings: NotifySettings,
        *,
        log: Callable[[str, str], None] = lambda level, message: None,
        sender: Callable[[Alert], None] | None = None,
    ) -> None:
        self.settings = settings
        self.watch = AlertWatch(settings)
        self.log = log
        self._failures: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._send = sender or (apprise_sender(settings) if settings.urls else None)
        self._thread: threading.Thread | None = None
        if self._send is not None:
            self._thread = threading.Thread(target=self._work, name="levctl-notify", daemon=True)
            self._thread.start()

    def __call__(self, notice: NoticeLike) -> list[Event]:
        try:
            for alert in self.watch.observe(notice):
                self.log(_LOG_LEVEL[alert.level], f"{alert.kind}: {alert.body}")
                if self._wanted(alert):
                    self._queue.put_nowait(alert)
        except queue.Full:
            self._failures.put(("warning", "notify_failed", f"{QUEUE_SIZE} notifications waiting: dropped"))
        except Exception as exc:  # telling must never stop the loop
            self._failures.put(
                ("warning", "notify_failed", f"notification not built: {type(exc).__name__}: {exc}")
            )
        return self.failures()

    def _wanted(self, alert: Alert) -> bool:
        return (
            self._send is not None
            and alert.kind in self.settings.events
            and LEVELS[alert.level] >= LEVELS[self.settings.level]
        )

    def failures(self) -> list[Event]:
        """What failed to go out since the last call, as events for the journal."""
        out = []
        while not self._failures.empty():
            out.append(self._failures.get_nowait())
        return out

    def _work(self) -> None:
        assert self._send is not None
        while (alert := self._queue.get()) is not None:
            try:
                self._send(alert)
            except Exception as exc:
                message = f"{alert.kind} notification not sent: {exc}"
                self._failures.put(("warning", "notify_failed", message))
                self.log("warning", message)

    def close(self, timeout_s: float | None = None) -> list[Event]:
        """Send what is queued (waiting at most ``timeout_s``, by default the settings'), then stop."""
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=1.0)
            self._thread.join(self.settings.timeout_s if timeout_s is None else timeout_s)
        return self.failures()


_LOG_LEVEL = {"info": "info", "warning": "warning", "critical": "error"}


def apprise_sender(settings: NotifySettings) -> Callable[[Alert], None]:
    """One apprise object per URL; a URL apprise cannot read is refused at once (:class:`NotifyError`)."""
    try:
        import apprise
    except ImportError:
        raise NotifyError("notify.urls: notifications need apprise: pip install 'levctl[notify]'") from None

    logging.getLogger("apprise").propagate = False  # its own lines may name a URL: ours say why
    services = []
    for url in settings.urls:
        one = apprise.Apprise()
        if not one.add(url):
            raise NotifyError(f"notify.urls: apprise cannot use {url_name(url)} (check the URL's form)")
        services.append((url_name(url), one))
    types = {"info": apprise.NotifyType.INFO, "warning": apprise.NotifyType.WARNING}
    secrets = _url_parts(settings.urls)

    def send(alert: Alert) -> None:
        failed = []
        for name, service in services:
            with apprise.LogCapture(level=logging.WARNING) as captured:
                ok = service.notify(
                    title=f"levctl {alert.level.upper()}: {alert.title}",
                    body=alert.body,
                    notify_type=types.get(alert.level, apprise.NotifyType.FAILURE),
                )
            if not ok:
                detail = _APPRISE_PREFIX.sub("", " ".join(captured.getvalue().split()))[-200:]
                for part in secrets:
                    detail = detail.replace(part, "***")
                failed.append(f"{name}{': ' + detail if detail else ''}")
        if failed:
            raise RuntimeError("; ".join(failed))

    return send


_APPRISE_PREFIX = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - [A-Z]+ - ")  # apprise's log format


def _url_parts(urls: Iterable[str]) -> list[str]:
    """Every piece of the URLs long enough to be a token or password (they never reach a message)."""
    parts = {p for u in urls for p in re.split(r"[/:@?&=#,]+", u.split("://", 1)[-1]) if len(p) >= 4}
    return sorted(parts, key=len, reverse=True)
