"""One bot per decision log and per account: the locks, as a second process meets them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from controller.lock import AlreadyRunningError, RunLocks, account_key


def hold_in_another_process(db, account_dir=None, account=None):
    """A child process that takes the locks and waits for its stdin to close."""
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from controller.lock import RunLocks
        locks = RunLocks(Path({str(db)!r}), account_dir={None if account_dir is None else f"Path({str(account_dir)!r})"},
                 account={account!r}).acquire()
        print("held", flush=True)
        sys.stdin.read()
    """)
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_process_is_refused_with_the_holder_named_and_the_lock_dies_with_the_holder(tmp_path):
    db = tmp_path / "levctl.db"
    child = hold_in_another_process(db)
    try:
        with pytest.raises(AlreadyRunningError) as refused:
            RunLocks(db).acquire()
        message = str(refused.value)
        assert f"process {child.pid} on " in message and str(db) in message and "\n" not in message
    finally:
        child.kill()  # like kill -9: no clean-up code runs
        child.wait()
    locks = RunLocks(db).acquire()  # the kernel released it with the process
    locks.release()


def test_the_account_lock_is_shared_across_logs_and_names_no_secret(tmp_path):
    key = account_key("deribit", "https://test.deribit.com", "the-api-key-123")
    assert "the-api-key-123" not in key and key == account_key(
        "deribit", "https://test.deribit.com", "the-api-key-123"
    )
    assert key != account_key("deribit", "https://test.deribit.com", "another-key")
    child = hold_in_another_process(tmp_path / "a.db", tmp_path / "locks", key)
    try:
        with pytest.raises(AlreadyRunningError, match="the account deribit-"):
            RunLocks(tmp_path / "b.db", account_dir=tmp_path / "locks", account=key).acquire()
        # the failed attempt released the log lock it had taken first
        RunLocks(tmp_path / "b.db").acquire().release()
    finally:
        child.stdin.close()
        child.wait()
    assert os.path.exists(tmp_path / "locks" / f"{key}.lock")
