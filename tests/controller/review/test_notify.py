"""Notifications: alerts on changes only, sent through apprise to a local ``json://`` webhook by a real
``levctl run``; a slow or dead notifier never holds the loop, and its failures become events."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controller.records import Notice
from controller.review.notify import AlertWatch, Notifier, NotifySettings, notify_urls
from tests.controller.e2e import EXE, free_port

TOKEN = "s3cr3t-hook-token-77"


class Webhook:
    """An HTTP server on 127.0.0.1 that keeps the JSON apprise posts (optionally answering slowly)."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.posts: list[dict[str, Any]] = []
        posts, delay = self.posts, delay_s

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                posts.append({"path": self.path, **json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook/{TOKEN}"

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def cycle(n: int, **row: Any) -> Notice:
    base = {
        "n": n,
        "ts": f"2026-01-02T{n:02d}:00:00+00:00",
        "state": "ACTIVE",
        "action": "HOLD",
        "reason": "inside",
    }
    return Notice(1, "paper", "sim", {**base, **row})


def test_alerts_come_on_changes_only():
    watch = AlertWatch(NotifySettings(failed_in_a_row=2, liquidation_distance=0.2, var_fraction=0.1))
    advice = ["vega +2,500 USD per vol point exceeds the limit 2,000: reduce X from -5 to -3"]
    kinds = [
        [(a.kind, a.level) for a in watch.observe(notice)]
        for notice in (
            cycle(1, advice=advice, equity_usd=1e6, liquidation_move=-0.5, var_usd=50_000),
            cycle(2, advice=advice, equity_usd=1e6, liquidation_move=-0.15, var_usd=150_000),
            cycle(3, advice=[], equity_usd=1e6, liquidation_move=-0.15, var_usd=150_000),
            cycle(4, action="ERROR", reason="boom"),
            cycle(5, action="ERROR", reason="boom"),
            cycle(6, action="ERROR", reason="boom"),
            cycle(7, state="REDUCING", reason="margin ratio 60% above 50%", equity_usd=1e6),
            cycle(8, state="ACTIVE", reason="stale data: ticker 300 s old", equity_usd=1e6),
            cycle(9, state="HALTED", action="HALT", reason="account equity is 0 BTC"),
            Notice(1, "paper", "sim", {}, stopped=("halted", "account equity is 0 BTC")),
        )
    ]
    assert kinds == [
        [("breach", "warning")],
        [("liquidation", "critical"), ("var", "warning")],
        [("breach", "info")],  # the breach ended; liquidation and VaR still stand: nothing new
        [],
        [("failed", "warning")],  # the second in a row, once
        [],
        [("failed", "info"), ("reducing", "warning"), ("liquidation", "info"), ("var", "info")],
        [("reducing", "info"), ("guard", "warning")],
        [("halt", "critical")],
        [],  # the halt was told with its cycle
    ]


def test_the_var_guard_and_its_advice_are_one_var_alert_not_a_breach():
    watch = AlertWatch(NotifySettings(var_fraction=0.05))
    guard = "1-day 99% VaR 61,000 USD is 6.1% of equity, above 5%: only risk-reducing orders"
    advice = [
        "1-day 99% VaR -61,000 USD exceeds the limit 50,000: reduce BTC-PERPETUAL from +9e+05 to +7e+05 "
        "(it carries 100% of it; about 13,000 less)"
    ]
    row = {"equity_usd": 1e6, "var_usd": 61_000, "advice": advice}
    (reducing, var) = watch.observe(cycle(1, state="REDUCING", reason=guard, **row))
    assert (reducing.kind, var.kind, var.level) == ("reducing", "var", "warning")
    assert var.title == "VaR above its limit" and "6.1% of equity, above 5%" in var.body
    assert watch.observe(cycle(2, state="REDUCING", reason=guard, **row)) == []  # still on: nothing new
    ended = watch.observe(cycle(3, equity_usd=1e6, var_usd=40_000, advice=[]))
    assert [(a.kind, a.level) for a in ended] == [("reducing", "info"), ("var", "info")]
    assert "VaR 40,000 USD (4.0% of equity) within limits" in ended[1].body


def test_in_a_portfolio_each_currency_is_watched_on_its_own_and_the_book_once_a_cycle():
    watch = AlertWatch(NotifySettings(liquidation_distance=0.3))
    book_guard = "the book's 1-day VaR 90,000 USD is above 5% of its equity"
    vega = ["vega +2,500 USD per vol point exceeds the limit 2,000: reduce X from -5 to -3"]

    def rows(n: int, *, guard: bool = False, cascade: float = 0.6) -> list[Notice]:
        book = {"portfolio": {"goals": {}}, "cascade_distance": cascade, "cascade_loss_usd": 400_000.0}
        btc_reason = f"{book_guard}: only risk-reducing orders" if guard else "margin ratio 60% above 50%"
        eth_reason = f"{book_guard}: only risk-reducing orders" if guard else "inside"
        return [
            cycle(n, currency="BTC", state="REDUCING", reason=btc_reason, advice=vega, **book),
            cycle(
                n,
                currency="ETH",
                state="REDUCING" if guard else "ACTIVE",
                reason=eth_reason,
                advice=[],
                **book,
            ),
        ]

    told = [[(a.kind, a.level, a.body) for notice in rows(n, **kw) for a in watch.observe(notice)]
            for n, kw in ((1, {}), (2, {}), (3, {"guard": True, "cascade": 0.2}), (4, {}))]  # fmt: skip
    kinds = [[(k, level) for k, level, _ in cycle_alerts] for cycle_alerts in told]
    assert kinds == [
        [("reducing", "warning"), ("breach", "warning")],  # BTC's; ETH's clean row ends neither
        [],
        [("book", "warning"), ("book", "critical"), ("reducing", "warning")],  # the book once; ETH reduces
        [("book", "info"), ("book", "info"), ("reducing", "info")],  # ETH back; BTC still REDUCING
    ]
    assert "cycle 1 BTC: REDUCING" in told[0][0][2] and "cycle 3 ETH: REDUCING" in told[2][2][2]
    assert "the book is REDUCING: the book's 1-day VaR 90,000 USD" in told[2][0][2]
    assert "a common move of 20.0% would liquidate the whole book" in told[2][1][2]


def test_var_advice_alone_starts_the_var_alert():
    watch = AlertWatch(NotifySettings())  # no var_fraction: the guard's advice is the signal
    advice = ["1-day 99% VaR -61,000 USD exceeds the limit 50,000: reduce X from -5 to -3"]
    (alert,) = watch.observe(cycle(1, advice=advice, equity_usd=1e6, var_usd=61_000))
    assert alert.kind == "var" and "1-day 99% VaR -61,000 USD exceeds the limit 50,000" in alert.body


def test_every_guard_of_the_policy_is_a_guard_alert():
    reasons = [
        "data from the future: ticker is stamped 5.0 s after the exchange's clock (limit 2 s)",
        "stale data: positions is 300 s old (limit 120 s)",
        "implausible index jump +20.0% since the last cycle (limit 15%): holding until it is confirmed",
        "exchange and model greeks disagree: BTC-PERPETUAL delta 1.0 vs 0.5",
        "kill switch logs/KILL is present",
    ]
    for reason in reasons:
        watch = AlertWatch(NotifySettings())
        assert [a.kind for a in watch.observe(cycle(1, reason=reason, equity_usd=1e6))] == ["guard"], reason


def test_a_fill_and_a_plain_stop_are_told():
    watch = AlertWatch(NotifySettings())
    order = SimpleNamespace(
        side=SimpleNamespace(value="buy"), filled_amount=1000.0, instrument="BTC-PERPETUAL", avg_price=91_850.0,
        label="lv-1-1-0", state=SimpleNamespace(value="filled"),
    )  # fmt: skip
    (fill,) = watch.observe(Notice(1, "testnet", "deribit-testnet", cycle(1).row, orders=(order,)))
    assert fill.kind == "fill" and "buy 1000 BTC-PERPETUAL at 91,850.00" in fill.body
    (stop,) = watch.observe(
        Notice(1, "testnet", "deribit-testnet", {}, stopped=("finished", "stop requested"))
    )
    assert (stop.kind, stop.level) == ("stopped", "info") and "stop requested" in stop.body


def test_urls_come_from_the_config_and_the_environment():
    env = {"LEVCTL_NOTIFY_URLS": "json://a/1, tgram://b/2  json://a/1"}
    assert notify_urls(["json://a/1"], env) == ("json://a/1", "tgram://b/2")


def test_level_and_events_choose_what_is_sent(webhook):
    notifier = Notifier(NotifySettings(urls=(webhook.url,), level="warning", events=("breach", "halt")))
    advice = ["vega +2,500 USD per vol point exceeds the limit 2,000: reduce X from -5 to -3"]
    notifier(cycle(1, advice=advice, state="REDUCING", reason="margin ratio 60%"))
    notifier(cycle(2, advice=[]))  # the breach's end is info: below the level
    assert notifier.close(5) == []
    assert [p["title"] for p in webhook.posts] == ["levctl WARNING: breach: vega"]
    assert webhook.posts[0]["type"] == "warning" and webhook.posts[0]["path"] == f"/hook/{TOKEN}"


def write_config(folder: Path, url: str, **notify: Any) -> Path:
    settings = {"urls": [url], "level": "info", **notify}
    lines = [
        "[run]",
        'mode = "paper"',
        "interval_s = 0.2",
        f'db = "{folder / "n.db"}"',
        f'log_file = "{folder / "n.log"}"',
    ]
    lines += [f'kill_switch_file = "{folder / "KILL"}"', "[notify]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    text = (Path(__file__).parents[3] / "controller" / "default.toml").read_text()
    body = text.split("[venue]", 1)[1]
    path = folder / "notify.toml"
    path.write_text("\n".join(lines) + "\n[venue]" + body)
    return path


def run(config: Path, cycles: int, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "run", "--config", str(config), "--cycles", str(cycles)],
        capture_output=True, text=True, timeout=120, env={**__import__("os").environ, **env},
    )  # fmt: skip


def test_a_real_run_tells_the_webhook_and_no_secret_leaves(tmp_path, webhook):
    config = write_config(tmp_path, webhook.url)
    done = run(config, 4)
    assert done.returncode == 0, done.stderr
    titles = [p["title"] for p in webhook.posts]
    assert "levctl WARNING: breach: worst scenario loss" in titles  # the default config's standing advice
    assert "levctl INFO: fill" in titles and titles[-1] == "levctl INFO: run finished"
    assert "4 cycles done" in webhook.posts[-1]["message"]
    # the breach is told once, when it starts, not every cycle, on stderr too
    assert titles.count("levctl WARNING: breach: worst scenario loss") == 1
    assert done.stderr.count("breach: run 1 (paper on sim) cycle 1 BTC: worst scenario loss") == 1
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("n.*"))
    assert TOKEN.encode() not in stored and TOKEN not in done.stdout + done.stderr
    with sqlite3.connect(tmp_path / "n.db") as conn:
        (config_json,) = conn.execute("select config_json from runs").fetchone()
    assert json.loads(config_json)["notify"]["urls"] == ["json://…"]


@pytest.mark.slow
def test_a_run_whose_var_trips_the_guard_tells_the_webhook(tmp_path, webhook):
    """Two virtual days of history give a VaR (about 4 % of equity); the guard at 2 % trips at once."""
    config = write_config(tmp_path, webhook.url, events=["var"], level="warning")
    text = config.read_text().replace("interval_s = 0.2", "interval_s = 0")
    text = text.replace("[risk]", "[risk]\nvar_min_days = 2", 1)
    config.write_text(text.replace("[guards]", "[guards]\nmax_var_fraction = 0.02", 1))
    done = run(config, 80)
    assert done.returncode == 0, done.stderr
    assert [p["title"] for p in webhook.posts] == ["levctl WARNING: VaR above its limit"]
    body = webhook.posts[0]["message"]
    assert re.search(r"1-day 99% VaR [\d,]+ USD is [\d.]+% of equity, above 2%", body), body
    assert done.stderr.count("var: run 1 (paper on sim)") == 1  # told once, on stderr too
    with sqlite3.connect(tmp_path / "n.db") as conn:
        first = conn.execute("select min(n) from cycles where var_usd is not null").fetchone()[0]
        reducing = conn.execute("select min(n) from cycles where state = 'REDUCING'").fetchone()[0]
    assert first is not None and reducing == first and f"cycle {first} BTC:" in body


def test_urls_from_the_environment_are_used(tmp_path, webhook):
    config = write_config(tmp_path, webhook.url, events=["stopped"])
    config.write_text(config.read_text().replace(f'urls = ["{webhook.url}"]', "urls = []"))
    done = run(config, 2, LEVCTL_NOTIFY_URLS=webhook.url)
    assert done.returncode == 0, done.stderr
    assert [p["title"] for p in webhook.posts] == ["levctl INFO: run finished"]


def test_a_slow_notifier_never_holds_the_loop(tmp_path):
    slow = Webhook(delay_s=3.0)
    try:
        config = write_config(tmp_path, slow.url, timeout_s=1.0)
        started = time.monotonic()
        done = run(config, 8)
        elapsed = time.monotonic() - started
    finally:
        slow.close()
    assert done.returncode == 0, done.stderr
    # eight cycles 0.2 s apart and at most timeout_s waiting at the end, not 3 s per message
    assert elapsed < 8, elapsed
    with sqlite3.connect(tmp_path / "n.db") as conn:
        latencies = [r[0] for r in conn.execute("select latency_ms from cycles")]
    assert len(latencies) == 8 and max(latencies) < 1000, latencies  # no cycle waited for a send


def test_a_dead_notifier_is_an_event_not_a_fault(tmp_path):
    dead = f"json://127.0.0.1:{free_port()}/hook/{TOKEN}"
    config = write_config(tmp_path, dead)
    done = run(config, 5)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "n.db") as conn:
        failed = [r[0] for r in conn.execute("select message from events where kind = 'notify_failed'")]
        states = {r[0] for r in conn.execute("select action from cycles")}
    assert failed and all("json://" in m and TOKEN not in m for m in failed), failed
    assert "ERROR" not in states and len(states) >= 1


def test_a_url_apprise_cannot_read_is_one_clear_error(tmp_path):
    config = write_config(tmp_path, "nosuchservice://x/y")
    done = run(config, 1)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "Error: notify.urls: apprise cannot use nosuchservice://… (check the URL's form)"
    ]
