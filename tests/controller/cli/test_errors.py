"""Common mistakes, tried as a new user would: the installed ``levctl`` in a real process, and on stderr
one line that names the problem (never a traceback), with an exit status that is not 0.

Each case is in the list of issue 16; ``test_report.py`` holds those of ``log`` and ``report``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.controller.e2e import EXE, rows

KEY, SECRET = "cli-errors-key-7f3a", "cli-errors-secret-9b21c4"


def levctl(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = subprocess.run(
        [EXE, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env={**os.environ, **(env or {})}
    )
    return done.returncode, done.stdout, done.stderr


def one_line(stderr: str) -> str:
    """The only line on stderr (a traceback or a second line fails the test)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def other_programs_database(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("create table customers (name text)")
        conn.execute("insert into customers values ('Ada')")
    return path


# ------------------------------------------------------------------ the decision log at start-up


def test_run_on_another_programs_database_leaves_it_alone(tmp_path):
    other = other_programs_database(tmp_path / "shop.db")
    before = other.read_bytes()
    code, _, err = levctl("run", "--db", str(other), "--cycles", "1", cwd=tmp_path)
    line = one_line(err)
    assert code != 0 and "shop.db is not a levctl decision log" in line and "customers" in line
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "logs") == ["shop.db"]  # no lock, no WAL


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("notes.txt/levctl.db", "notes.txt is a file, not a folder"),
        ("notes.txt", "notes.txt is not a SQLite database"),
        (".", "is a directory, not a decision log"),
    ],
)
def test_once_where_no_decision_log_can_be(tmp_path, target, words):
    (tmp_path / "notes.txt").write_text("shopping list\n" * 40)
    code, out, err = levctl("once", "--db", target, cwd=tmp_path)
    assert code != 0 and words in one_line(err) and out == ""


def test_a_full_disk_at_start_up_for_the_text_log(tmp_path):
    (tmp_path / "full.toml").write_text('[run]\nlog_file = "/dev/full"\ndb = "run.db"\n')
    code, _, err = levctl("run", "--config", "full.toml", "--cycles", "1", cwd=tmp_path)
    line = one_line(err)
    assert code != 0 and "cannot write the text log /dev/full" in line and "No space left" in line
    assert not (tmp_path / "run.db").exists()


def test_a_full_disk_at_start_up_for_the_decision_log(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (needs root): {mounted.stderr.strip()}")
    try:
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as filler:  # every byte taken
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        code, _, err = levctl("once", "--db", str(disk / "run.db"), cwd=tmp_path)
        line = one_line(err)
        assert code != 0 and "run.db" in line and ("disk is full" in line or "No space left" in line), line
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# ------------------------------------------------------------------ the venue at start-up


def test_an_unreachable_exchange_at_start_up_is_retried_then_one_line_and_the_run_closed(tmp_path):
    (tmp_path / "t.toml").write_text(
        "\n".join(
            [
                "[run]",
                'mode = "testnet"',
                'db = "run.db"',
                "retry_attempts = 3",
                "retry_base_delay_s = 0.01",
                "retry_max_delay_s = 0.02",
                "[venue]",
                'kind = "ccxt"',
                "[venue.ccxt]",
                "sandbox = true",
                'rest_url = "http://127.0.0.1:9"',  # the discard port: nothing listens
                "timeout_ms = 1000",
            ]
        )
    )
    env = {"LEVCTL_API_KEY": KEY, "LEVCTL_API_SECRET": SECRET}
    code, _, err = levctl("run", "--config", "t.toml", "--cycles", "1", cwd=tmp_path, env=env)
    retries = [line for line in err.splitlines() if "; retry " in line]
    assert len(retries) == 2, err  # three attempts
    rest = "\n".join(line for line in err.splitlines() if line not in retries)
    line = one_line(rest)
    assert code == 3 and line.startswith("Error: levctl could not start:") and "network error" in line
    assert KEY not in err and SECRET not in err
    (run,) = rows(tmp_path / "run.db", "select status, exit_reason from runs")
    assert run["status"] == "failed" and "could not start" in run["exit_reason"]


# ------------------------------------------------------------------ config check across keys


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        (
            '[run]\nmode = "live"\n',
            "run.mode = 'live' needs venue.kind = 'ccxt' (the simulator runs 'paper')",
        ),
        (
            '[venue]\ncurrency = "BTC"\nhedge_instrument = "ETH-PERPETUAL"\n',
            "hedge_instrument ETH-PERPETUAL is not a BTC instrument",
        ),
        (
            '[run]\nmode = "testnet"\n[venue]\nkind = "ccxt"\n[venue.ccxt]\nsandbox = false\n',
            "run.mode = 'testnet' needs venue.ccxt.sandbox = true",
        ),
        ('[venue.sim]\nreplay = "nowhere.csv"\n', "venue.sim.replay: no file at nowhere.csv"),
        ('[notify]\nurls = ["nonsense://x"]\n', "notify.urls: apprise cannot use nonsense://…"),
    ],
)
def test_config_check_validates_across_keys(tmp_path, toml, words):
    (tmp_path / "c.toml").write_text(toml)
    code, out, err = levctl("config", "check", "c.toml", cwd=tmp_path)
    assert code == 1 and words in one_line(err) and out == ""


# ------------------------------------------------------------------ the calculators and the positions CSV


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["greeks", "--forward", "60000", "--strike", "65000", "--expiry", "2020-01-01", "--as-of",
             "2020-01-03", "--vol-pct", "60", "--call"],
            "the option has expired: expiry 2020-01-01 08:00 UTC is 1.7 days before 2020-01-03 00:00 UTC (--as-of)",
        ),
        (
            ["greeks", "--forward", "60000", "--strike", "65000", "--days", "0", "--vol-pct", "60", "--put"],
            "the option has expired: --days 0; an expired option has no greeks and is worth its intrinsic "
            "value, 5,000.00 USD",
        ),
        (
            ["iv", "--forward", "100", "--strike", "90", "--days", "10", "--call", "--price", "9"],
            "no implied volatility (BELOW_INTRINSIC) for the call F 100.00 K 90.00: the price 9.0000 USD is "
            "below the call's intrinsic value 10.0000 USD",
        ),
        (
            ["iv", "--forward", "100", "--strike", "90", "--days", "10", "--put", "--price-coin", "0.95"],
            "(ABOVE_MAXIMUM) for the put F 100.00 K 90.00: the price 95.0000 USD is at or above the bound "
            "90.0000 USD (a put is worth less than its strike)",
        ),
        (
            ["iv", "--forward", "100", "--strike", "90", "--days", "10", "--put", "--price", "0"],
            "(AT_INTRINSIC) for the put F 100.00 K 90.00: the price 0.0000 USD equals the intrinsic value",
        ),
    ],
)  # fmt: skip
def test_calculators_name_the_problem_with_its_figures(tmp_path, args, words):
    code, out, err = levctl(*args, cwd=tmp_path)
    assert code == 1 and words in one_line(err) and out == ""


@pytest.mark.parametrize(
    ("content", "extra", "words"),
    [
        (
            "instrument,size,mark_price,mark_ivv\nBTC-PERPETUAL,1,90000,50\n",
            [],
            "book.csv: unknown column(s) 'mark_ivv' (known: instrument, size, mark_price, underlying_price, "
            "mark_iv)",
        ),
        ("instrument,size,mark_price\nBTC-PERPETUAL,1,-90000\n", [], "book.csv:2: column mark_price must be positive"),
        ("instrument,size,mark_price\n", [], "book.csv: no positions (a header and no rows)"),
        ("instrument,size,mark_price\nBTC-PERPETUAL,1,90000\n", ["--collateral", "BTC=-1"], "--collateral BTC=-1: -1 must be zero or more"),
        ("instrument,size,mark_price\nBTC-PERPETUAL,1,90000\n", ["--index", "BTC=0"], "--index BTC=0: 0 must be positive"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", [], "book.csv: not UTF-8 text"),
    ],
)  # fmt: skip
def test_the_positions_csv_refuses_what_it_cannot_price(tmp_path, content, extra, words):
    path = tmp_path / "book.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    index = [] if any(a == "--index" for a in extra) else ["--index", "BTC=90000"]
    code, out, err = levctl("book", "--positions", "book.csv", *index, *extra, cwd=tmp_path)
    assert code == 1 and words in one_line(err) and out == ""


# ------------------------------------------------------------------ --help by workflow


def test_help_lists_every_command_by_workflow_with_its_whole_description(tmp_path):
    from controller.cli.main import COMMANDS

    code, out, err = levctl("--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert code == 0 and err == ""
    sections = ["Run (", "Watch (", "Review (", "Research (", "Tools ("]
    where = [out.index(s) for s in sections]
    assert where == sorted(where) and "Other" not in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert set(COMMANDS) <= set(lines)
    assert all(not lines[name].endswith("...") for name in COMMANDS)  # never cut short
    assert (
        where[0] < out.index("  run ") < out.index("  doctor ") < where[1] < out.index("  serve ") < where[2]
    )
    assert "Run one cycle and print the book, the leverage figures with the band, and the decision." in out


# ------------------------------------------------------------------ levctl serve


def test_serve_on_a_port_in_use_or_another_programs_database(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, err = levctl("serve", "--port", port, cwd=tmp_path)
        assert code == 1 and f"cannot listen on 127.0.0.1:{port}: Address already in use" in one_line(err)
    other = other_programs_database(tmp_path / "shop.db")
    code, _, err = levctl("serve", "--db", str(other), "--port", port, cwd=tmp_path)
    assert code == 1 and "shop.db is not a levctl decision log" in one_line(err)
