"""``levctl sim serve`` as a user runs it: a process on 127.0.0.1 that ccxt can talk to."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from tests.controller.conftest import make_client
from tests.controller.e2e import free_port, wait_for


def test_sim_serve_runs_answers_ccxt_and_stops_cleanly(tmp_path):
    exe = shutil.which("levctl", path=str(Path(sys.executable).parent))
    assert exe
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            "sim",
            "serve",
            "--port",
            str(port),
            "--seed",
            "3",
            "--speed",
            "0",
            "--start",
            "2026-01-02T08:00",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/_sim/state")
        client = make_client(url)
        assert client.fetch_balance({"code": "BTC"})["BTC"]["total"] == pytest.approx(10.0)
        state = json.load(urllib.request.urlopen(url + "/_sim/state", timeout=5))
        assert state["now"].startswith("2026-01-02T08:00")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/api/v2" in out and "stopped" in out
    assert "levctl-sim-secret" not in out + err


def test_sim_serve_rejects_a_bad_replay_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_ms,btc_usd\n1,2\n")
    result = CliRunner().invoke(cli, ["sim", "serve", "--replay", str(bad), "--port", "0"])
    assert result.exit_code == 1 and "missing column(s)" in result.output


def test_sim_serve_reports_a_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["sim", "serve", "--port", str(port)])
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output


def test_sim_serve_serves_two_currencies_when_given_both(tmp_path):
    exe = shutil.which("levctl", path=str(Path(sys.executable).parent))
    assert exe
    port = free_port()
    args = ["sim", "serve", "--port", str(port), "--speed", "0", "--currency", "BTC", "--currency", "ETH"]
    proc = subprocess.Popen(
        [exe, *args, "--balance", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/_sim/state")
        balance = make_client(url).fetch_balance()
        assert (balance["BTC"]["total"], balance["ETH"]["total"]) == (pytest.approx(3.0), pytest.approx(3.0))
        state = json.load(urllib.request.urlopen(url + "/_sim/state", timeout=5))
        assert sorted(state["currencies"]) == ["BTC", "ETH"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "BTC and ETH markets correlated 0.8" in out


def test_sim_serve_replays_one_currency_only(tmp_path):
    history = tmp_path / "h.csv"
    history.write_text("timestamp_ms,btc_usd,dvol,funding_rate_8h\n1,2,3,0\n7200001,2,3,0\n")
    args = ["sim", "serve", "--replay", str(history), "--currency", "BTC", "--currency", "ETH", "--port", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "give one --currency" in result.output
