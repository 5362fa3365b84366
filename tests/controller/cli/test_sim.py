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
