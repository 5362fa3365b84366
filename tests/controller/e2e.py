"""Helpers for end-to-end tests: `levctl sim serve` and `levctl run` as real processes on 127.0.0.1.

Nothing here imitates levctl: the bot is the installed `levctl` command (or the click command in
process), the exchange is the simulator's HTTP face, and the client between them is the real ccxt.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import ccxt

SECRET = "e2e-s3cr3t-9f1c2b7d"
KEY = "e2e-key"
EXE = shutil.which("levctl", path=str(Path(sys.executable).parent))
PERP = "BTC-PERPETUAL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up within {timeout} s")


def rows(db: Path, sql: str, *args: Any) -> list[dict[str, Any]]:
    with sqlite3.connect(db, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args)]


def has_cycles(db: Path, at_least: int = 1) -> bool:
    """Whether the bot has committed cycles (the file exists before its tables do)."""
    try:
        return db.exists() and len(rows(db, "select id from cycles")) >= at_least
    except sqlite3.OperationalError:
        return False


def bot_env() -> dict[str, str]:
    return {**os.environ, "LEVCTL_API_KEY": KEY, "LEVCTL_API_SECRET": SECRET}


class Server:
    """`levctl sim serve` in a subprocess, on a free port of 127.0.0.1.

    ``speed`` is virtual seconds per wall second: 1 keeps the exchange's clock on the wall clock
    (``valid_until`` then passes in real time), 0 freezes it unless a test advances it.
    """

    def __init__(self, *, speed: float = 0.0, start: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [EXE, "sim", "serve", "--port", str(self.port), "--speed", str(speed)]
        command += ["--api-key", KEY, "--api-secret", SECRET]
        if start is not None:
            command += ["--start", start]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(self.url + "/_sim/state")
        self.client = ccxt.deribit({"apiKey": KEY, "secret": SECRET, "timeout": 5000})
        self.client.urls["test"] = {"rest": self.url}
        self.client.set_sandbox_mode(True)
        self.client.load_markets()

    def post(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(payload or {}).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.load(reply)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as reply:
            return json.load(reply)

    def fault(self, **spec: Any) -> None:
        self.post("/_sim/faults", spec)

    def methods(self) -> list[str]:
        return [r["method"] for r in self.get("/_sim/requests")["requests"]]

    def sent_labels(self) -> list[str]:
        """The label of every buy and sell request the exchange received (resends show up twice)."""
        return [
            r["params"].get("label", "")
            for r in self.get("/_sim/requests")["requests"]
            if r["method"] in ("private/buy", "private/sell")
        ]

    def position(self, name: str = PERP) -> float:
        return float(self.get("/_sim/state")["positions"].get(name, 0.0))

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        return out + err


def write_testnet_config(path: Path, server: Server, **sections: dict[str, Any]) -> Path:
    """A testnet-mode config against ``server``, everything under the test's folder; ``sections``
    override keys, e.g. ``run={"interval_s": 0}``."""
    folder = path.parent
    base: dict[str, dict[str, Any]] = {
        "run": {
            "mode": "testnet",
            "interval_s": 0.3,
            "db": str(folder / "run.db"),
            "log_file": str(folder / "run.log"),
            "kill_switch_file": str(folder / "KILL"),
            "account_lock_dir": str(folder / "locks"),
            "order_timeout_s": 5,
            "retry_base_delay_s": 0.05,
            "retry_max_delay_s": 0.2,
        },
        "venue": {"kind": "ccxt"},
        "venue.ccxt": {"sandbox": True, "rest_url": server.url, "timeout_ms": 800},
        "policy": {"band": 0.1, "rebalance_to": "target", "min_order_usd": 10},
        "guards": {"max_data_age_s": 600, "max_clock_skew_s": 3600},
    }
    for name, values in sections.items():
        base.setdefault(name.replace("__", "."), {}).update(values)
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def journal_position(db: Path, start: float, name: str = PERP) -> float:
    """The position the journal says the bot built: ``start`` plus its filled orders, signed."""
    filled = rows(
        db,
        "select side, filled_amount from orders where instrument = ? and filled_amount > 0",
        name,
    )
    return start + sum(o["filled_amount"] * (1 if o["side"] == "buy" else -1) for o in filled)


def assert_journal_matches_exchange(db: Path, server: Server, *, start: float, prefix: str = "lv-") -> None:
    """No label sent twice, no fill the journal lacks, and the journal's position is the exchange's."""
    labels = [x for x in server.sent_labels() if x.startswith(prefix)]
    assert len(labels) == len(set(labels)), f"a label was sent twice: {labels}"
    journaled = {o["label"]: o for o in rows(db, "select * from orders")}
    placed = server.get("/_sim/state")["order_labels"]
    orphans = [x for x in placed if x.startswith(prefix) and x not in journaled]
    assert not orphans, f"orders on the exchange that the journal does not know: {orphans}"
    in_flight = [o["label"] for o in journaled.values() if o["status"] in ("sending", "unknown", "open")]
    assert not in_flight, f"orders still in flight: {in_flight}"
    assert journal_position(db, start) == server.position()


def start_bot(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [EXE, "run", "--config", str(config), *args],
        env=bot_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
