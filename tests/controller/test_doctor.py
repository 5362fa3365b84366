"""``levctl doctor`` against the embedded simulator and, through the real ccxt client, ``levctl sim serve``:
one line per check, exit 0 or 3, nothing sent to the exchange, nothing written to the log."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from controller.doctor import scope_check
from tests.controller.e2e import EXE, SECRET, Server, bot_env, free_port, write_testnet_config


def doctor(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [EXE, "doctor", *args], capture_output=True, text=True, timeout=120, env=env or bot_env(), cwd=cwd
    )
    return done.returncode, done.stdout.splitlines(), done.stderr


def status(lines: list[str]) -> dict[str, str]:
    return {line.split()[1]: line.split()[0] for line in lines}


@pytest.fixture(scope="module")
def server():
    running = Server()
    yield running
    running.stop()


@pytest.fixture
def config(tmp_path, server):
    return write_testnet_config(tmp_path / "t.toml", server)


def test_the_embedded_default_passes_every_check(tmp_path):
    code, lines, _ = doctor(cwd=tmp_path)
    assert code == 0, lines
    assert status(lines) == dict.fromkeys(
        ("config", "credentials", "exchange", "hedge", "account", "log"), "ok"
    )
    assert not (tmp_path / "logs" / "levctl.db").exists()  # "will be created": doctor creates nothing


def test_a_testnet_config_against_the_simulator_over_http(config, server, tmp_path):
    server.post("/_sim/requests/clear")
    code, lines, err = doctor("--config", str(config))
    assert code == 0, [*lines, err]
    found = status(lines)
    assert found == {**dict.fromkeys(("config", "credentials", "exchange", "access", "hedge", "account", "log"), "ok"),
                     "clock": found["clock"]}  # fmt: skip
    text = "\n".join(lines)
    assert "scope account:read trade:read_write wallet:read: enough for testnet" in text
    assert "BTC-PERPETUAL listed: inverse (size in USD), contract 10, minimum 10, tick 0.5" in text
    assert "margin model segregated_sm" in text and "local clock" in text
    sent = [
        m
        for m in server.methods()
        if m.startswith("private/") and m.split("/")[1] in ("buy", "sell", "cancel")
    ]
    assert sent == [] and not (tmp_path / "run.db").exists()
    assert SECRET not in text + err


def test_refused_credentials_fail_and_the_rest_is_skipped(config):
    code, lines, err = doctor(
        "--config", str(config), env={**bot_env(), "LEVCTL_API_SECRET": "wrong-secret-1"}
    )
    assert code == 3 and "1 check(s) failed: access" in err
    found = status(lines)
    assert found["access"] == "FAIL" and found["hedge"] == found["account"] == "skip"
    assert "rejected the API credentials" in "\n".join(lines) and "wrong-secret-1" not in "\n".join(lines)


def test_missing_credentials_and_an_unreachable_exchange(tmp_path, server):
    bare = write_testnet_config(tmp_path / "a.toml", server)
    env = {k: v for k, v in bot_env().items() if k != "LEVCTL_API_SECRET"}
    code, lines, _ = doctor("--config", str(bare), env=env)
    assert code == 3 and status(lines)["credentials"] == "FAIL" and "LEVCTL_API_SECRET not set" in lines[1]
    code, lines, _ = doctor("--config", str(bare), "--venue-url", f"http://127.0.0.1:{free_port()}")
    assert code == 3 and status(lines)["exchange"] == "FAIL" and "network error" in "\n".join(lines)


@pytest.mark.parametrize(
    ("scope", "flags", "expected", "words"),
    [
        ("account:read trade:read", [], "FAIL", "lacks trade:read_write, needed for testnet"),
        ("account:read trade:read", ["--dry-run"], "ok", "enough for dry-run"),
        ("trade:read_write", [], "FAIL", "lacks account:read"),
        ("account:read trade:read_write wallet:read_write", [], "WARN", "the key can withdraw"),
    ],
)
def test_the_key_scope_must_be_enough_for_the_mode(config, server, scope, flags, expected, words):
    server.fault(method="public/auth", kind="rewrite", path="result.scope", value=scope)
    code, lines, _ = doctor("--config", str(config), *flags)
    (access,) = [line for line in lines if line.split()[1] == "access"]
    assert access.split()[0] == expected and words in access
    assert code == (3 if expected == "FAIL" else 0)


def test_scope_rules():
    assert scope_check("account:read_write trade:read_write", "live").status == "ok"
    assert scope_check(None, "testnet").status == "warn"
    assert scope_check("account:read", "dry-run").status == "fail"


def test_a_log_that_cannot_be_written_fails(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, lines, _ = doctor("--db", str(blocker / "levctl.db"), cwd=tmp_path)
    assert code == 3 and status(lines)["log"] == "FAIL" and "is a file, not a folder" in lines[-1]
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("create table t (x)")
    code, lines, _ = doctor("--db", str(other), cwd=tmp_path)
    assert code == 3 and "another program's database" in lines[-1]
